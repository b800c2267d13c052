//! Where password hashes run: tokio's blocking threads, behind semaphores.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;

use crate::credentials::password::{KEPT_AREA_BLOCKS, REJECTED, Scheme, Verified, WorkArea};
use crate::http::error::ApiError;

/// Where password hashes run: on tokio's blocking threads, at most `workers` at once, because a
/// hash holds a core for tens to hundreds of milliseconds (and an Argon2 one 19 MiB).
///
/// Admission is bounded three ways, so that no caller can starve the others:
/// - at most `workers` hashes of one client address run or wait for a worker at once; its
///   further requests wait their turn (on a fair queue) without taking anyone's place;
/// - at most `workers + queue` hashes are admitted at all; beyond, 503 with `Retry-After` at
///   once;
/// - a hash that cannot start within `max_wait` answers 503 with `Retry-After`, well before
///   the request's own deadline.
///
/// The Argon2 work areas of a burst of checks are reused from one check to the next, and all
/// freed when the last admitted hash ends: a burst costs no allocation per check, and an idle
/// server holds none.
#[derive(Clone)]
pub struct PasswordHasher(Arc<Inner>);

struct Inner {
    running: Arc<Semaphore>,
    admitted: Arc<Semaphore>,
    /// The clients with hashes admitted or waiting, each with its own allowance.
    clients: Mutex<HashMap<IpAddr, Arc<Semaphore>>>,
    per_client: usize,
    max_wait: Duration,
    /// Hashes that run at once, and `workers + queue`: the permits of `running` and `admitted`.
    workers: usize,
    capacity: usize,
    /// Work areas that finished checks left for the next ones.
    areas: Mutex<Vec<WorkArea>>,
}

fn busy() -> ApiError {
    metrics::counter!("password_hash_rejected_total").increment(1);
    ApiError::Unavailable {
        detail: "Server busy, retry shortly",
        retry_after_secs: Some(1),
    }
}

impl PasswordHasher {
    /// `workers` hashes at once, `queue` more waiting, none waiting longer than `max_wait`.
    pub fn new(workers: usize, queue: usize, max_wait: Duration) -> Self {
        let workers = workers.max(1);
        Self(Arc::new(Inner {
            running: Arc::new(Semaphore::new(workers)),
            admitted: Arc::new(Semaphore::new(workers + queue)),
            clients: Mutex::new(HashMap::new()),
            per_client: workers,
            max_wait,
            workers,
            capacity: workers + queue,
            areas: Mutex::new(Vec::new()),
        }))
    }

    /// The allowance of `client` (`None`: a command on the server itself, not limited).
    fn allowance(&self, client: Option<IpAddr>) -> Option<Arc<Semaphore>> {
        let mut clients = self.0.clients.lock().unwrap_or_else(|p| p.into_inner());
        let new = || Arc::new(Semaphore::new(self.0.per_client));
        Some(clients.entry(client?).or_insert_with(new).clone())
    }

    /// Forgets `client`'s allowance when nobody holds or waits for it.
    fn release(&self, client: Option<IpAddr>) {
        let mut clients = self.0.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(ip) = client
            && clients.get(&ip).is_some_and(|s| Arc::strong_count(s) == 1)
        {
            clients.remove(&ip);
        }
    }

    /// A work area for a check: one a finished check left, or an empty one (allocated by the
    /// check if it needs one).
    fn take_area(&self) -> WorkArea {
        let mut areas = self.0.areas.lock().unwrap_or_else(|p| p.into_inner());
        areas.pop().unwrap_or_default()
    }

    /// Keeps `area` for the next check while other hashes are admitted; frees every kept area
    /// when the caller's (still admitted) is the last.
    fn give_back(&self, area: WorkArea) {
        let admitted = self
            .0
            .capacity
            .saturating_sub(self.0.admitted.available_permits());
        let others_admitted = admitted > 1;
        let mut areas = self.0.areas.lock().unwrap_or_else(|p| p.into_inner());
        if !others_admitted {
            areas.clear();
        } else if area.len() == KEPT_AREA_BLOCKS && areas.len() < self.0.workers {
            areas.push(area);
        }
    }

    /// Runs `f` on a blocking thread once admitted (see [`PasswordHasher`]).
    pub async fn run<T: Send + 'static>(
        &self,
        client: Option<IpAddr>,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let deadline = tokio::time::Instant::now() + self.0.max_wait;
        let wait = |semaphore: Arc<Semaphore>| async move {
            match tokio::time::timeout_at(deadline, semaphore.acquire_owned()).await {
                Ok(Ok(permit)) => Ok(permit),
                _ => Err(busy()),
            }
        };
        let allowance = self.allowance(client);
        let result = async {
            let _own_turn = match allowance.clone() {
                Some(allowance) => Some(wait(allowance).await?),
                None => None,
            };
            let _admitted = self.0.admitted.clone().try_acquire_owned();
            let _admitted = _admitted.map_err(|_| busy())?;
            let _running = wait(self.0.running.clone()).await?;
            tokio::task::spawn_blocking(f).await.map_err(|e| {
                ApiError::Internal(anyhow::anyhow!("a password hashing job failed: {e}"))
            })
        }
        .await;
        drop(allowance);
        self.release(client);
        result
    }

    /// Hashes `password` for storage with `scheme`.
    pub async fn hash(
        &self,
        client: Option<IpAddr>,
        password: &SecretString,
        scheme: Scheme,
    ) -> Result<String, ApiError> {
        let password = password.clone();
        self.run(client, move || scheme.hash(password.expose_secret()))
            .await?
            .map_err(ApiError::Internal)
    }

    /// Checks `password` against `stored`, or against a dummy hash of `scheme` when there is no
    /// account, so that both take the same time. A failed check against a hash cheaper than
    /// the realm's (an imported `$2b$04$`) also checks the dummy, so that a wrong password costs
    /// at least what the realm's own scheme costs whatever the stored hash: the time of an
    /// answer does not tell who holds a weak hash.
    pub async fn verify(
        &self,
        client: Option<IpAddr>,
        password: &SecretString,
        stored: Option<&str>,
        scheme: Scheme,
    ) -> Result<Verified, ApiError> {
        let password = password.clone();
        let stored = stored.map(str::to_owned);
        let hasher = self.clone();
        self.run(client, move || {
            let password = password.expose_secret();
            let mut area = hasher.take_area();
            let verified = match stored {
                None => {
                    scheme.verify(password, &scheme.dummy(), &mut area);
                    REJECTED
                }
                Some(stored) => {
                    let verified = scheme.verify(password, &stored, &mut area);
                    if !verified.ok && !scheme.is_current(&stored) {
                        scheme.verify(password, &scheme.dummy(), &mut area);
                    }
                    verified
                }
            };
            hasher.give_back(area);
            verified
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BCRYPT_LOW: Scheme = Scheme::Bcrypt { cost: 4 };

    #[tokio::test]
    async fn unknown_accounts_are_checked_against_the_dummy_and_rejected() {
        let hasher = PasswordHasher::new(1, 4, Duration::from_secs(5));
        let verified = hasher
            .verify(None, &"anything".into(), None, BCRYPT_LOW)
            .await
            .expect("verify");
        assert_eq!(verified, REJECTED);
    }

    /// A job that blocks until released, and a way to know it started.
    fn blocking_job(
        hasher: &PasswordHasher,
        client: Option<IpAddr>,
    ) -> (
        tokio::task::JoinHandle<Result<(), ApiError>>,
        std::sync::mpsc::Receiver<()>,
        std::sync::mpsc::Sender<()>,
    ) {
        let (started, is_running) = std::sync::mpsc::channel::<()>();
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let h = hasher.clone();
        let job = tokio::spawn(async move {
            h.run(client, move || {
                let _ = started.send(());
                let _ = hold.recv_timeout(Duration::from_secs(30));
            })
            .await
        });
        (job, is_running, release)
    }

    async fn wait_started(is_running: std::sync::mpsc::Receiver<()>) {
        tokio::task::spawn_blocking(move || is_running.recv_timeout(Duration::from_secs(30)))
            .await
            .expect("join")
            .expect("the job started");
    }

    #[tokio::test]
    async fn a_full_queue_answers_503_with_retry_after() {
        let hasher = PasswordHasher::new(1, 1, Duration::from_secs(30));
        // One job runs and blocks until released...
        let (running, is_running, release) = blocking_job(&hasher, None);
        wait_started(is_running).await;
        // ...one waits for the worker (admitted on its first poll)...
        let mut queued = std::pin::pin!(hasher.run(None, || ()));
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(
            queued.as_mut().poll(&mut cx).is_pending(),
            "queued behind the first"
        );
        // ...and the third finds no room.
        match hasher.run(None, || ()).await {
            Err(ApiError::Unavailable {
                retry_after_secs: Some(1),
                ..
            }) => {}
            other => panic!("expected 503, got {other:?}"),
        }
        release.send(()).expect("release");
        running.await.expect("join").expect("job ran");
        queued.await.expect("the queued job ran");
    }

    #[tokio::test]
    async fn a_hash_that_cannot_start_in_time_is_a_503() {
        let hasher = PasswordHasher::new(1, 8, Duration::from_millis(200));
        let (running, is_running, release) = blocking_job(&hasher, None);
        wait_started(is_running).await;
        let started = std::time::Instant::now();
        let waited = hasher.run(None, || ()).await;
        assert!(
            matches!(waited, Err(ApiError::Unavailable { .. })),
            "{waited:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
        release.send(()).expect("release");
        running.await.expect("join").expect("job ran");
    }

    /// One client's burst waits on its own allowance and never takes another client's turn.
    #[tokio::test]
    async fn one_client_cannot_hold_every_worker_and_the_queue() {
        let hasher = PasswordHasher::new(2, 2, Duration::from_secs(30));
        let busy_client = Some(IpAddr::from([10, 0, 0, 1]));
        let (first, first_running, release_first) = blocking_job(&hasher, busy_client);
        let (second, second_running, release_second) = blocking_job(&hasher, busy_client);
        wait_started(first_running).await;
        wait_started(second_running).await;
        // Ten more of the same client wait for its allowance, not for the queue.
        let waiting: Vec<_> = (0..10)
            .map(|_| {
                let h = hasher.clone();
                tokio::spawn(async move { h.run(busy_client, || ()).await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(50)).await;
        // Another client is admitted (the queue has room) and runs when a worker frees up.
        let other = {
            let h = hasher.clone();
            tokio::spawn(async move { h.run(Some(IpAddr::from([10, 0, 0, 2])), || 7).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        release_first.send(()).expect("release");
        assert_eq!(other.await.expect("join").expect("ran"), 7);
        release_second.send(()).expect("release");
        for job in [first, second] {
            job.await.expect("join").expect("ran");
        }
        for job in waiting {
            job.await.expect("join").expect("ran in turn");
        }
        assert!(
            hasher.0.clients.lock().expect("lock").is_empty(),
            "allowances are forgotten when unused"
        );
    }

    #[tokio::test]
    async fn a_panicking_job_is_a_500_and_the_hasher_goes_on() {
        let hasher = PasswordHasher::new(2, 8, Duration::from_secs(30));
        let failed = hasher.run(None, || panic!("boom")).await;
        assert!(matches!(failed, Err(ApiError::Internal(_))), "{failed:?}");
        let all: Vec<_> =
            futures_util::future::join_all((0..4).map(|i| hasher.run(None, move || i * 2))).await;
        assert_eq!(
            all.into_iter().map(|r| r.expect("job")).collect::<Vec<_>>(),
            vec![0, 2, 4, 6]
        );
    }

    /// A wrong password against a cheap imported hash costs at least a check of the realm's
    /// own scheme: timing does not tell who holds a weak hash.
    #[test]
    fn a_failed_check_of_a_cheap_hash_costs_the_realms_scheme() {
        let realm = Scheme::Bcrypt { cost: 10 };
        let cheap = bcrypt::hash("pw-one-two", 4).expect("cost 4");
        let hasher = PasswordHasher::new(1, 4, Duration::from_secs(30));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let time = |stored: Option<String>| {
            let started = std::time::Instant::now();
            let verified = runtime
                .block_on(hasher.verify(None, &"wrong".into(), stored.as_deref(), realm))
                .expect("verify");
            assert!(!verified.ok);
            started.elapsed()
        };
        // The shortest of five interleaved rounds each: the other tests hash on the same cores,
        // and a round they slow down must not decide.
        let own_hash = realm.hash("pw-one-two").expect("hash");
        let (mut own, mut imported) = (Duration::MAX, Duration::MAX);
        for _ in 0..5 {
            own = own.min(time(Some(own_hash.clone())));
            imported = imported.min(time(Some(cheap.clone())));
        }
        // Cost 4 alone is 64 times cheaper than cost 10; with the dummy it costs more than both.
        assert!(imported >= own / 2, "{imported:?} against {own:?}");
    }

    fn kept_areas(hasher: &PasswordHasher) -> usize {
        hasher.0.areas.lock().expect("areas").len()
    }

    #[tokio::test]
    async fn argon2_work_areas_are_kept_during_a_burst_and_freed_after_it() {
        let hasher = PasswordHasher::new(2, 4, Duration::from_secs(30));
        let stored = Scheme::Argon2id.hash("pw-one-two").expect("hash");
        let check = |hasher: PasswordHasher, password: &'static str| {
            let stored = stored.clone();
            async move {
                hasher
                    .verify(None, &password.into(), Some(&stored), Scheme::Argon2id)
                    .await
                    .expect("verify")
                    .ok
            }
        };
        // Alone: the area is freed with the check.
        assert!(check(hasher.clone(), "pw-one-two").await);
        assert_eq!(kept_areas(&hasher), 0);
        // Beside another admitted hash: the area waits for the next check, which reuses it.
        let (running, is_running, release) = blocking_job(&hasher, None);
        wait_started(is_running).await;
        assert!(!check(hasher.clone(), "wrong").await);
        assert_eq!(kept_areas(&hasher), 1);
        assert!(check(hasher.clone(), "pw-one-two").await);
        assert_eq!(kept_areas(&hasher), 1);
        // The last hash of the burst frees it.
        release.send(()).expect("release");
        running.await.expect("join").expect("job");
        assert!(check(hasher.clone(), "pw-one-two").await);
        assert_eq!(kept_areas(&hasher), 0);
    }
}
