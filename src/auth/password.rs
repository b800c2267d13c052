//! Password hashing with the argon2 and bcrypt crates' own hash and verify, on tokio's blocking
//! threads behind semaphores: hashes are deliberately slow (tens to hundreds of milliseconds of
//! one core), so they never run on the async runtime, and a burst never waits without limit.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use argon2::{Algorithm, Argon2, Params, PasswordHash, PasswordHasher as _, PasswordVerifier as _};
use tokio::sync::Semaphore;

use crate::error::ApiError;

/// How a realm stores new passwords (docs/api.md §6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// Argon2id, m=19456 KiB, t=2, p=1 (OWASP's recommendation).
    Argon2id,
    /// bcrypt `$2b$` at this cost, what the AutoBot backend's `bcrypt.checkpw` verifies.
    Bcrypt { cost: u32 },
}

/// Argon2id memory cost (KiB), iterations and lanes of new hashes.
const ARGON2_M: u32 = 19_456;
const ARGON2_T: u32 = 2;
const ARGON2_P: u32 = 1;

/// Hashes of a password nobody knows, checked when the account does not exist so that an
/// unknown username costs the same time as a wrong password. They are constants: computing
/// them at start would delay start-up by a hash.
const DUMMY_ARGON2ID: &str = "$argon2id$v=19$m=19456,t=2,p=1$9EfAnX468y8ik1P8BG7Vrw$KmpWN1yXCsHc4B5gDTin9NEXuPlUfx47xc9zXT2zBr0";
/// The salt and checksum of a bcrypt dummy. A bcrypt check costs what the hash's own cost
/// field says, so the dummy carries the realm's cost in front of these (`$2b$<cost>$…`): a
/// dummy at another cost than real hashes would tell unknown usernames apart by time.
const DUMMY_BCRYPT_SALT_AND_HASH: &str = "nvZyirAJoYpCjmFgWWfIJuAaorWzbsEU4AAVeRP0d0refRvixGwjC";

/// The outcome of checking a password against a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    pub ok: bool,
    /// The stored hash uses another scheme or other parameters than the realm's: store a
    /// fresh hash now that the password is known.
    pub needs_rehash: bool,
}

const REJECTED: Verified = Verified {
    ok: false,
    needs_rehash: false,
};

fn argon2() -> Argon2<'static> {
    #[expect(
        clippy::unwrap_used,
        reason = "constant parameters that are known to be valid"
    )]
    let params = Params::new(ARGON2_M, ARGON2_T, ARGON2_P, None).unwrap();
    Argon2::new(Algorithm::Argon2id, argon2::Version::V0x13, params)
}

impl Scheme {
    /// Hashes `password` for storage (blocking: call it on the pool).
    pub fn hash(self, password: &str) -> anyhow::Result<String> {
        match self {
            Self::Argon2id => argon2()
                .hash_password(password.as_bytes())
                .map(|h| h.to_string())
                .map_err(|e| anyhow::anyhow!("argon2 hash failed: {e}")),
            Self::Bcrypt { cost } => {
                bcrypt::hash(password, cost).map_err(|e| anyhow::anyhow!("bcrypt hash failed: {e}"))
            }
        }
    }

    /// The longest password this scheme hashes whole, in bytes: bcrypt reads 72.
    pub fn max_password_bytes(self) -> Option<usize> {
        match self {
            Self::Argon2id => None,
            Self::Bcrypt { .. } => Some(72),
        }
    }

    /// The hash checked when there is no account, costing what a real check costs.
    fn dummy(self) -> String {
        match self {
            Self::Argon2id => DUMMY_ARGON2ID.to_owned(),
            Self::Bcrypt { cost } => format!("$2b${cost:02}${DUMMY_BCRYPT_SALT_AND_HASH}"),
        }
    }

    /// Whether a hash that verified was made exactly as this scheme makes new ones.
    fn is_current(self, stored: &str) -> bool {
        match self {
            Self::Argon2id => stored.starts_with(&format!(
                "$argon2id$v=19$m={ARGON2_M},t={ARGON2_T},p={ARGON2_P}$"
            )),
            Self::Bcrypt { cost } => stored.starts_with(&format!("$2b${cost:02}$")),
        }
    }

    /// Checks `password` against a stored Argon2 (any variant and parameters) or bcrypt
    /// (`$2a$`, `$2b$`, `$2y$`) hash (blocking: call it on the pool). An unreadable hash is a
    /// mismatch, never an error: the caller answers as for a wrong password.
    pub fn verify(self, password: &str, stored: &str) -> Verified {
        let ok = if stored.starts_with("$argon2") {
            PasswordHash::new(stored).is_ok_and(|parsed| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
        } else if ["$2a$", "$2b$", "$2y$"]
            .iter()
            .any(|p| stored.starts_with(p))
        {
            bcrypt::verify(password, stored).unwrap_or(false)
        } else {
            false
        };
        if !ok {
            return REJECTED;
        }
        Verified {
            ok,
            needs_rehash: !self.is_current(stored),
        }
    }
}

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
#[derive(Clone)]
pub struct PasswordHasher(Arc<Inner>);

struct Inner {
    running: Arc<Semaphore>,
    admitted: Arc<Semaphore>,
    /// The clients with hashes admitted or waiting, each with its own allowance.
    clients: Mutex<HashMap<IpAddr, Arc<Semaphore>>>,
    per_client: usize,
    max_wait: Duration,
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
        }))
    }

    /// The allowance of `client` (`None`: a command on the server itself, not limited).
    fn allowance(&self, client: Option<IpAddr>) -> Option<Arc<Semaphore>> {
        let ip = client?;
        let mut clients = self.0.clients.lock().unwrap_or_else(|p| p.into_inner());
        Some(
            clients
                .entry(ip)
                .or_insert_with(|| Arc::new(Semaphore::new(self.0.per_client)))
                .clone(),
        )
    }

    /// Forgets `client`'s allowance when nobody holds or waits for it.
    fn release(&self, client: Option<IpAddr>) {
        let Some(ip) = client else { return };
        let mut clients = self.0.clients.lock().unwrap_or_else(|p| p.into_inner());
        if clients.get(&ip).is_some_and(|s| Arc::strong_count(s) == 1) {
            clients.remove(&ip);
        }
    }

    /// Runs `f` on a blocking thread once admitted (see [`PasswordHasher`]).
    pub async fn run<T: Send + 'static>(
        &self,
        client: Option<IpAddr>,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let allowance = self.allowance(client);
        let result = self.admit_and_run(allowance.clone(), f).await;
        drop(allowance);
        self.release(client);
        result
    }

    async fn admit_and_run<T: Send + 'static>(
        &self,
        allowance: Option<Arc<Semaphore>>,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let deadline = tokio::time::Instant::now() + self.0.max_wait;
        let _own_turn = match allowance {
            Some(allowance) => Some(
                tokio::time::timeout_at(deadline, allowance.acquire_owned())
                    .await
                    .map_err(|_| busy())?
                    .map_err(|_| busy())?,
            ),
            None => None,
        };
        let _admitted = self
            .0
            .admitted
            .clone()
            .try_acquire_owned()
            .map_err(|_| busy())?;
        let _running = tokio::time::timeout_at(deadline, self.0.running.clone().acquire_owned())
            .await
            .map_err(|_| busy())?
            .map_err(|_| busy())?;
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("a password hashing job failed: {e}")))
    }

    /// Hashes `password` for storage with `scheme`.
    pub async fn hash(
        &self,
        client: Option<IpAddr>,
        password: &str,
        scheme: Scheme,
    ) -> Result<String, ApiError> {
        let password = password.to_owned();
        self.run(client, move || scheme.hash(&password))
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
        password: &str,
        stored: Option<&str>,
        scheme: Scheme,
    ) -> Result<Verified, ApiError> {
        let password = password.to_owned();
        let stored = stored.map(str::to_owned);
        self.run(client, move || match stored {
            None => {
                scheme.verify(&password, &scheme.dummy());
                REJECTED
            }
            Some(stored) => {
                let verified = scheme.verify(&password, &stored);
                if !verified.ok && !scheme.is_current(&stored) {
                    scheme.verify(&password, &scheme.dummy());
                }
                verified
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const BCRYPT_LOW: Scheme = Scheme::Bcrypt { cost: 4 };

    #[test]
    fn argon2id_hashes_carry_the_fixed_parameters_and_verify() {
        let hash = Scheme::Argon2id.hash("correct horse").expect("hash");
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        let ok = Scheme::Argon2id.verify("correct horse", &hash);
        assert_eq!(
            ok,
            Verified {
                ok: true,
                needs_rehash: false
            }
        );
        assert!(!Scheme::Argon2id.verify("wrong horse", &hash).ok);
    }

    #[test]
    fn bcrypt_hashes_are_2b_at_the_configured_cost() {
        let hash = BCRYPT_LOW.hash("correct horse").expect("hash");
        assert!(hash.starts_with("$2b$04$"), "{hash}");
        assert_eq!(
            BCRYPT_LOW.verify("correct horse", &hash),
            Verified {
                ok: true,
                needs_rehash: false
            }
        );
        assert!(!BCRYPT_LOW.verify("wrong horse", &hash).ok);
    }

    #[test]
    fn any_known_hash_verifies_and_asks_to_be_rehashed_to_the_realms_scheme() {
        let bcrypt_hash = BCRYPT_LOW.hash("pw-one-two").expect("bcrypt");
        let argon_hash = Scheme::Argon2id.hash("pw-one-two").expect("argon2");
        let moved = Scheme::Argon2id.verify("pw-one-two", &bcrypt_hash);
        assert_eq!(
            moved,
            Verified {
                ok: true,
                needs_rehash: true
            }
        );
        let moved = BCRYPT_LOW.verify("pw-one-two", &argon_hash);
        assert_eq!(
            moved,
            Verified {
                ok: true,
                needs_rehash: true
            }
        );
        // Another bcrypt cost, and the $2y$ spelling of PHP's bcrypt, also verify.
        let other_cost = bcrypt::hash("pw-one-two", 5).expect("cost 5");
        assert!(BCRYPT_LOW.verify("pw-one-two", &other_cost).needs_rehash);
        let php = other_cost.replacen("$2b$", "$2y$", 1);
        assert!(BCRYPT_LOW.verify("pw-one-two", &php).ok);
        // Other Argon2 parameters verify and are upgraded.
        let weak = Argon2::new(
            Algorithm::Argon2id,
            argon2::Version::V0x13,
            Params::new(8192, 1, 1, None).expect("params"),
        )
        .hash_password(b"pw-one-two")
        .expect("weak")
        .to_string();
        assert_eq!(
            Scheme::Argon2id.verify("pw-one-two", &weak),
            Verified {
                ok: true,
                needs_rehash: true
            }
        );
    }

    #[test]
    fn garbage_never_verifies() {
        for stored in ["", "plain", "$argon2id$broken", "$2b$12$short", "$1$md5$"] {
            assert!(!Scheme::Argon2id.verify("x", stored).ok, "{stored}");
        }
    }

    #[test]
    fn the_dummy_hashes_are_well_formed_for_their_scheme() {
        // A malformed dummy would be rejected instantly and make unknown users fast to spot.
        assert!(PasswordHash::new(DUMMY_ARGON2ID).is_ok());
        // Each dummy is made exactly as the realm makes new hashes, at its cost.
        for scheme in [
            Scheme::Argon2id,
            Scheme::Bcrypt { cost: 4 },
            Scheme::Bcrypt { cost: 12 },
            Scheme::Bcrypt { cost: 31 },
        ] {
            let dummy = scheme.dummy();
            assert!(scheme.is_current(&dummy), "{scheme:?}: {dummy}");
            if let Scheme::Bcrypt { cost } = scheme {
                let parts: bcrypt::HashParts = dummy.parse().expect("a bcrypt hash");
                assert_eq!(parts.get_cost(), cost);
            }
        }
    }

    #[tokio::test]
    async fn unknown_accounts_are_checked_against_the_dummy_and_rejected() {
        let hasher = PasswordHasher::new(1, 4, Duration::from_secs(5));
        let verified = hasher
            .verify(None, "anything", None, BCRYPT_LOW)
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
                .block_on(hasher.verify(None, "wrong", stored.as_deref(), realm))
                .expect("verify");
            assert!(!verified.ok);
            started.elapsed()
        };
        let own = time(Some(realm.hash("pw-one-two").expect("hash")));
        let imported = time(Some(cheap));
        // Cost 4 alone is 64 times cheaper than cost 10; with the dummy it costs more than both.
        assert!(imported >= own / 2, "{imported:?} against {own:?}");
    }
}
