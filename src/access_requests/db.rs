//! The SQL of access requests (`slm_server.access_requests`).

use uuid::Uuid;

use crate::access_requests::dto::AccessRequest;
use crate::database::Db;

/// The pending request of an e-mail address is unique.
pub const REQUEST_CONFLICTS: &[(&str, &str)] = &[(
    "access_requests_pending_email_key",
    "A pending access request exists for this email",
)];

/// A new request.
pub struct NewRequest<'a> {
    pub id: Uuid,
    pub username: &'a str,
    pub email: &'a str,
    pub full_name: Option<&'a str>,
    pub reason: Option<&'a str>,
    pub ip: Option<&'a str>,
    /// The confusable skeleton of `email`.
    pub email_skeleton: &'a str,
}

pub async fn insert(db: &mut impl Db, request: &NewRequest<'_>) -> sqlx::Result<()> {
    sqlx::query(
        r"INSERT INTO slm_server.access_requests (id, username, email, full_name, reason, ip,
              email_skeleton)
          VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(request.id)
    .bind(request.username)
    .bind(request.email)
    .bind(request.full_name)
    .bind(request.reason)
    .bind(request.ip)
    .bind(request.email_skeleton)
    .execute(db.exec())
    .await
    .map(|_| ())
}

/// One page of requests, newest first, and the number of all matches.
pub async fn list(
    db: &mut impl Db,
    status: Option<&str>,
    skip: i64,
    limit: i64,
) -> sqlx::Result<(Vec<AccessRequest>, i64)> {
    let rows = sqlx::query_as(
        r"SELECT id, username, email, full_name, reason, status, created_at, reviewed_at,
                 reviewer_id, reviewer_username, comment, user_id
          FROM slm_server.access_requests WHERE ($1::text IS NULL OR status = $1)
          ORDER BY created_at DESC, id DESC OFFSET $2 LIMIT $3",
    )
    .bind(status)
    .bind(skip)
    .bind(limit)
    .fetch_all(db.exec())
    .await?;
    let total = sqlx::query_scalar(
        "SELECT count(*) FROM slm_server.access_requests WHERE ($1::text IS NULL OR status = $1)",
    )
    .bind(status)
    .fetch_one(db.exec())
    .await?;
    Ok((rows, total))
}

/// A request, locked for its review.
pub async fn lock(db: &mut impl Db, id: Uuid) -> sqlx::Result<Option<AccessRequest>> {
    sqlx::query_as(
        r"SELECT id, username, email, full_name, reason, status, created_at, reviewed_at,
                 reviewer_id, reviewer_username, comment, user_id
          FROM slm_server.access_requests WHERE id = $1 FOR UPDATE",
    )
    .bind(id)
    .fetch_optional(db.exec())
    .await
}

/// Records the review of a request.
pub async fn review(
    db: &mut impl Db,
    id: Uuid,
    status: &str,
    reviewer: (Uuid, &str),
    comment: Option<&str>,
    user_id: Option<Uuid>,
) -> sqlx::Result<AccessRequest> {
    sqlx::query_as(
        r"UPDATE slm_server.access_requests SET status = $2, reviewed_at = now(), reviewer_id = $3,
              reviewer_username = $4, comment = $5, user_id = $6
          WHERE id = $1
          RETURNING id, username, email, full_name, reason, status, created_at, reviewed_at,
                    reviewer_id, reviewer_username, comment, user_id",
    )
    .bind(id)
    .bind(status)
    .bind(reviewer.0)
    .bind(reviewer.1)
    .bind(comment)
    .bind(user_id)
    .fetch_one(db.exec())
    .await
}

/// The requests of a user (by the account they led to, or its e-mail), for the GDPR export.
pub async fn of_user(
    db: &mut impl Db,
    user_id: Uuid,
    email: &str,
) -> sqlx::Result<Vec<AccessRequest>> {
    sqlx::query_as(
        r"SELECT id, username, email, full_name, reason, status, created_at, reviewed_at,
                 reviewer_id, reviewer_username, comment, user_id
          FROM slm_server.access_requests WHERE user_id = $1 OR lower(email) = lower($2)
          ORDER BY created_at DESC, id DESC",
    )
    .bind(user_id)
    .bind(email)
    .fetch_all(db.exec())
    .await
}

/// The e-mails of pending requests whose skeleton is one of `skeletons` and which are none of
/// `emails` (lower-cased): look-alikes, not the same address.
pub async fn look_alike_pending(
    db: &mut impl Db,
    skeletons: &[String],
    emails: &[String],
) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        r"SELECT email FROM slm_server.access_requests
          WHERE status = 'pending' AND email_skeleton = ANY($1) AND lower(email) <> ALL($2)
          LIMIT 5",
    )
    .bind(skeletons)
    .bind(emails)
    .fetch_all(db.exec())
    .await
}
