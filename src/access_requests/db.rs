//! The SQL of access requests (`slm_server.access_requests`).

use sqlx::PgConnection;
use uuid::Uuid;

use crate::access_requests::dto::{AccessRequest, RequestStatus};

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
}

pub async fn insert(db: &mut PgConnection, request: &NewRequest<'_>) -> sqlx::Result<()> {
    sqlx::query!(
        r"INSERT INTO slm_server.access_requests (id, username, email, full_name, reason, ip)
          VALUES ($1, $2, $3, $4, $5, $6)",
        request.id,
        request.username,
        request.email,
        request.full_name,
        request.reason,
        request.ip,
    )
    .execute(&mut *db)
    .await
    .map(|_| ())
}

/// One page of requests, newest first, and the number of all matches.
pub async fn page(
    db: &mut PgConnection,
    status: Option<RequestStatus>,
    skip: i64,
    limit: i64,
) -> sqlx::Result<(Vec<AccessRequest>, i64)> {
    let status = status.map(RequestStatus::as_str);
    let rows = sqlx::query_as!(
        AccessRequest,
        r#"SELECT id, username, email, full_name, reason, status AS "status: RequestStatus",
                  created_at, reviewed_at, reviewer_id, reviewer_username, comment, user_id
           FROM slm_server.access_requests WHERE ($1::text IS NULL OR status = $1)
           ORDER BY created_at DESC, id DESC OFFSET $2 LIMIT $3"#,
        status,
        skip,
        limit,
    )
    .fetch_all(&mut *db)
    .await?;
    let total = sqlx::query_scalar!(
        r#"SELECT count(*) AS "count!" FROM slm_server.access_requests
           WHERE ($1::text IS NULL OR status = $1)"#,
        status,
    )
    .fetch_one(&mut *db)
    .await?;
    Ok((rows, total))
}

/// A request, locked for its review.
pub async fn lock(db: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<AccessRequest>> {
    sqlx::query_as!(
        AccessRequest,
        r#"SELECT id, username, email, full_name, reason, status AS "status: RequestStatus",
                  created_at, reviewed_at, reviewer_id, reviewer_username, comment, user_id
           FROM slm_server.access_requests WHERE id = $1 FOR UPDATE"#,
        id,
    )
    .fetch_optional(&mut *db)
    .await
}

/// The review of a request.
pub struct Review<'a> {
    pub status: RequestStatus,
    pub reviewer_id: Uuid,
    pub reviewer_username: &'a str,
    pub comment: Option<&'a str>,
    /// The user created on approval.
    pub user_id: Option<Uuid>,
}

/// Records the review of a request.
pub async fn review(
    db: &mut PgConnection,
    id: Uuid,
    review: &Review<'_>,
) -> sqlx::Result<AccessRequest> {
    sqlx::query_as!(
        AccessRequest,
        r#"UPDATE slm_server.access_requests SET status = $2, reviewed_at = now(),
               reviewer_id = $3, reviewer_username = $4, comment = $5, user_id = $6
           WHERE id = $1
           RETURNING id, username, email, full_name, reason, status AS "status: RequestStatus",
                     created_at, reviewed_at, reviewer_id, reviewer_username, comment, user_id"#,
        id,
        review.status.as_str(),
        review.reviewer_id,
        review.reviewer_username,
        review.comment,
        review.user_id,
    )
    .fetch_one(&mut *db)
    .await
}

/// The requests of a user (by the account they led to, or its e-mail), for the GDPR export.
pub async fn of_user(
    db: &mut PgConnection,
    user_id: Uuid,
    email: &str,
) -> sqlx::Result<Vec<AccessRequest>> {
    sqlx::query_as!(
        AccessRequest,
        r#"SELECT id, username, email, full_name, reason, status AS "status: RequestStatus",
                  created_at, reviewed_at, reviewer_id, reviewer_username, comment, user_id
           FROM slm_server.access_requests WHERE user_id = $1 OR lower(email) = lower($2)
           ORDER BY created_at DESC, id DESC"#,
        user_id,
        email,
    )
    .fetch_all(&mut *db)
    .await
}
