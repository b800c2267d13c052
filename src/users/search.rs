//! Listing users: a page of ids (then their rows through [`crate::users::db::rows`]) and the
//! total. This is the one place whose SQL is assembled at run time: its statements must be
//! planned afresh for each search pattern (a prepared, cached plan would choose one path for
//! every term), and the macros of checked SQL always prepare. Nothing sent is built from input:
//! every value is a bound parameter.
//!
//! The parameters of every statement: `$1` the LIKE pattern (NULL when browsing), `$2`
//! is_active, `$3` a role name, and for a page `$4` skip and `$5` limit (for a count, `$4` its
//! cap).

use sqlx::types::Json;

use crate::database::like_pattern;
use sqlx::{AssertSqlSafe, PgConnection};
use uuid::Uuid;

/// Filters and page of a user list.
#[derive(Debug, Default)]
pub struct UserFilter {
    pub search: Option<String>,
    pub is_active: Option<bool>,
    pub role: Option<String>,
    pub skip: i64,
    pub limit: i64,
}

/// Up to this many matches are counted exactly; beyond it, the planner's estimate is the total
/// (or this limit plus one, a lower bound, when the planner expected fewer).
pub const EXACT_COUNT_LIMIT: i64 = 10_000;

/// The rows a list considers, from the server's narrow search table `slm_server.user_search`
/// (one row per live user, kept by triggers on `public.users`: its order, `is_active` and its
/// searched text lower-cased). A search matches the pattern, lower-cased by the same function,
/// with a case-sensitive LIKE (the same answers as ILIKE on the columns, without lower-casing
/// each candidate); PostgreSQL has statistics for that column and knows, per pattern, whether
/// the term is rare (look it up in the trigram index `user_search_haystack_trgm_idx`, sort the
/// few matches) or common (walk the newest-first index `user_search_created_at_idx` and stop at
/// the page's end). Browsing ($1 NULL) walks the newest-first index.
fn matching(search: bool) -> String {
    let term = match search {
        true => "u.haystack LIKE lower($1::text)",
        false => "$1::text IS NULL",
    };
    format!(
        "FROM slm_server.user_search u WHERE {term}
           AND ($2::boolean IS NULL OR u.is_active = $2)
           AND ($3::text IS NULL OR EXISTS (
                 SELECT 1 FROM public.user_roles ur JOIN public.roles r ON r.id = ur.role_id
                 WHERE ur.user_id = u.user_id AND r.name = $3))"
    )
}

/// The statement of a page of ids, newest first.
pub fn page_statement(search: bool) -> String {
    format!(
        "SELECT u.user_id {} ORDER BY u.created_at DESC, u.user_id DESC OFFSET $4 LIMIT $5",
        matching(search)
    )
}

/// One page of user ids, newest first, and the number of all matches. The total is known
/// without counting when the page is the last one; otherwise it is counted exactly when the
/// planner expects at most [`EXACT_COUNT_LIMIT`] matches, and is the planner's estimate when it
/// expects more (counting tens of thousands of matches costs more than the page itself).
pub async fn page(db: &mut PgConnection, filter: &UserFilter) -> sqlx::Result<(Vec<Uuid>, i64)> {
    let pattern = filter.search.as_deref().map(like_pattern);
    let search = pattern.is_some();
    let ids: Vec<Uuid> = sqlx::query_scalar(AssertSqlSafe(page_statement(search)))
        .persistent(false)
        .bind(&pattern)
        .bind(filter.is_active)
        .bind(&filter.role)
        .bind(filter.skip)
        .bind(filter.limit)
        .fetch_all(&mut *db)
        .await?;
    let seen = filter.skip.saturating_add(ids.len() as i64);
    let last_page = (ids.len() as i64) < filter.limit && (filter.skip == 0 || !ids.is_empty());
    if last_page {
        return Ok((ids, seen));
    }
    let estimate = format!("EXPLAIN (FORMAT JSON) SELECT 1 {}", matching(search));
    let plan: Json<serde_json::Value> = sqlx::query_scalar(AssertSqlSafe(estimate))
        .persistent(false)
        .bind(&pattern)
        .bind(filter.is_active)
        .bind(&filter.role)
        .fetch_one(&mut *db)
        .await?;
    let estimated = plan.0[0]["Plan"]["Plan Rows"].as_f64().unwrap_or(0.0) as i64;
    if estimated > EXACT_COUNT_LIMIT {
        return Ok((ids, estimated.max(seen)));
    }
    let count = format!(
        "SELECT count(*) FROM (SELECT 1 {} LIMIT $4) capped",
        matching(search)
    );
    let counted: i64 = sqlx::query_scalar(AssertSqlSafe(count))
        .persistent(false)
        .bind(&pattern)
        .bind(filter.is_active)
        .bind(&filter.role)
        .bind(EXACT_COUNT_LIMIT + 1)
        .fetch_one(&mut *db)
        .await?;
    if counted <= EXACT_COUNT_LIMIT {
        return Ok((ids, counted));
    }
    Ok((ids, estimated.max(counted)))
}
