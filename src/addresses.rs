//! The e-mail addresses in use — each live user's and each pending access request's — and the
//! rule against look-alikes (Unicode TR39): an address whose confusable skeleton matches
//! another's without being it is refused, wherever it is given (creating or changing a user,
//! an import, the public access-request form). Its table is `slm_server.email_skeletons`; the
//! sweep reads `users` to find the live users whose address has no current entry.

use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::email_skeleton;
use crate::http::error::ApiError;
use crate::realm::Realm;

/// Who holds an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holder {
    User(Uuid),
    /// A pending access request.
    Request(Uuid),
}

impl Holder {
    fn parts(self) -> (Uuid, &'static str) {
        match self {
            Self::User(id) => (id, "user"),
            Self::Request(id) => (id, "request"),
        }
    }
}

/// Refuses an address of `emails` that looks like another one without being it (the same
/// skeleton, another address): another of `emails`, or one held by another than `except`. 409,
/// like a duplicate. Then records them as held by `holders` (one each, in order).
pub async fn hold(
    db: &mut PgConnection,
    holders: &[Holder],
    emails: &[&str],
    except: Option<Uuid>,
) -> Result<(), ApiError> {
    let skeletons: Vec<String> = emails.iter().map(|e| email_skeleton(e)).collect();
    let lowered: Vec<String> = emails.iter().map(|e| e.to_lowercase()).collect();
    let mut seen: std::collections::HashMap<&str, &str> = std::collections::HashMap::new();
    let within = skeletons
        .iter()
        .zip(&lowered)
        .any(|(skeleton, email)| *seen.entry(skeleton).or_insert(email) != email.as_str());
    if within
        || !look_alikes(db, &skeletons, &lowered, except)
            .await?
            .is_empty()
    {
        return Err(ApiError::Conflict(
            "Email looks like an existing one".into(),
        ));
    }
    let emails: Vec<String> = emails.iter().map(|e| (*e).to_owned()).collect();
    Ok(insert(db, holders, &emails, &skeletons).await?)
}

/// Forgets the address of `holder` (a deleted user, a reviewed request).
pub async fn release(db: &mut PgConnection, holder: Holder) -> Result<(), ApiError> {
    Ok(delete(db, holder).await?)
}

/// Brings the addresses of `realm`'s users up to date with what the AutoBot backend wrote:
/// computes the skeletons of live users that lack a current entry, and forgets deleted ones;
/// returns how many entries it wrote.
pub async fn sweep(realm: &Realm) -> Result<usize, ApiError> {
    let mut done = 0;
    loop {
        let written = realm
            .read(|mut db| {
                Box::pin(async move {
                    let rows = users_without_entry(&mut db, 1000).await?;
                    let holders: Vec<Holder> =
                        rows.iter().map(|(id, _)| Holder::User(*id)).collect();
                    let emails: Vec<String> = rows.iter().map(|(_, e)| e.clone()).collect();
                    let skeletons: Vec<String> = emails.iter().map(|e| email_skeleton(e)).collect();
                    insert(&mut db, &holders, &emails, &skeletons).await?;
                    Ok(rows.len())
                })
            })
            .await?;
        if written == 0 {
            realm
                .read(|mut db| Box::pin(async move { Ok(forget_deleted_users(&mut db).await?) }))
                .await?;
            return Ok(done);
        }
        done += written;
    }
}

// ---------------------------------------------------------------------------------------------
// The SQL of the addresses in use.

/// The addresses held by others than `except` whose skeleton is one of `skeletons` and which
/// are none of `emails` (lower-cased): look-alikes, not the same address. Both lists are sets
/// (a join, a hashed subplan), never `= ANY(array)`: a parameter's array is searched element by
/// element, and with an import's 5,000 addresses per statement, each entry already held was
/// compared with all 5,000 (an import of 100,000 users took 104 s).
async fn look_alikes(
    db: &mut PgConnection,
    skeletons: &[String],
    emails: &[String],
    except: Option<Uuid>,
) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar!(
        r"SELECT s.email FROM slm_server.email_skeletons s
          WHERE s.skeleton IN (SELECT UNNEST($1::text[]))
            AND lower(s.email) NOT IN (SELECT UNNEST($2::text[]))
            AND ($3::uuid IS NULL OR s.holder <> $3)
          LIMIT 5",
        skeletons,
        emails,
        except,
    )
    .fetch_all(&mut *db)
    .await
}

/// Records that `holders[i]` holds `emails[i]`, whose skeleton is `skeletons[i]`.
async fn insert(
    db: &mut PgConnection,
    holders: &[Holder],
    emails: &[String],
    skeletons: &[String],
) -> sqlx::Result<()> {
    let (ids, kinds): (Vec<Uuid>, Vec<String>) = holders
        .iter()
        .map(|h| {
            let (id, kind) = h.parts();
            (id, kind.to_owned())
        })
        .unzip();
    sqlx::query!(
        r"INSERT INTO slm_server.email_skeletons (holder, kind, email, skeleton)
          SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[])
          ON CONFLICT (holder) DO UPDATE SET email = EXCLUDED.email, skeleton = EXCLUDED.skeleton",
        &ids,
        &kinds,
        emails,
        skeletons,
    )
    .execute(&mut *db)
    .await
    .map(|_| ())
}

/// Forgets the address of `holder` (a deleted user, a reviewed request).
async fn delete(db: &mut PgConnection, holder: Holder) -> sqlx::Result<()> {
    sqlx::query!(
        "DELETE FROM slm_server.email_skeletons WHERE holder = $1",
        holder.parts().0
    )
    .execute(&mut *db)
    .await
    .map(|_| ())
}

/// Up to `limit` live users whose address has no entry, or another than when it was computed
/// (rows the AutoBot backend wrote).
async fn users_without_entry(
    db: &mut PgConnection,
    limit: i64,
) -> sqlx::Result<Vec<(Uuid, String)>> {
    Ok(sqlx::query!(
        r#"SELECT u.id, u.email::text AS "email!" FROM public.users u
           LEFT JOIN slm_server.email_skeletons s ON s.holder = u.id
           WHERE u.deleted_at IS NULL AND s.email IS DISTINCT FROM u.email
           LIMIT $1"#,
        limit
    )
    .fetch_all(&mut *db)
    .await?
    .into_iter()
    .map(|r| (r.id, r.email))
    .collect())
}

/// Forgets the entries of users that are deleted (a soft delete by the AutoBot backend);
/// returns how many.
async fn forget_deleted_users(db: &mut PgConnection) -> sqlx::Result<u64> {
    sqlx::query!(
        r"DELETE FROM slm_server.email_skeletons s
          WHERE s.kind = 'user' AND NOT EXISTS (
              SELECT 1 FROM public.users u WHERE u.id = s.holder AND u.deleted_at IS NULL)"
    )
    .execute(&mut *db)
    .await
    .map(|r| r.rows_affected())
}
