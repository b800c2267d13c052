//! Password hashing with the argon2 and bcrypt crates' own hash and verify, on a fixed set of
//! lower-priority worker threads fed through a bounded queue.
//!
//! Hashes are deliberately slow (tens to hundreds of milliseconds of one core), so they never
//! run on the async runtime. When every worker is busy and the queue is full, the caller gets
//! 503 with `Retry-After` at once instead of waiting without limit. A worker whose job panics is
//! logged and replaced by a new thread, so the pool keeps its size.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use argon2::{Algorithm, Argon2, Params, PasswordHash, PasswordHasher as _, PasswordVerifier as _};
use crossbeam_channel::{Receiver, Sender, TrySendError};
use tokio::sync::oneshot;

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

type Job = Box<dyn FnOnce() + Send>;

struct Pool {
    jobs: Receiver<Job>,
    /// Live worker threads (a panicking one is replaced before it exits).
    workers: AtomicUsize,
    next_name: AtomicUsize,
}

/// The hashing pool; cheap to clone.
#[derive(Clone)]
pub struct PasswordHasher {
    submit: Sender<Job>,
    pool: Arc<Pool>,
}

/// The niceness of hashing threads. Above the request threads' 0, so that during a login flood
/// the server keeps answering its other requests; but not the lowest (19), which lets any
/// CPU-bound neighbour on the host starve logins. Measured with two busy loops at nice 0 on a
/// 2-core host: a 40 ms Argon2id login took 2.5 s at nice 19, 0.35 s at 10, 0.07 s at 0.
const HASH_THREAD_NICE: i32 = 10;

/// Gives the calling thread [`HASH_THREAD_NICE`] (on Linux, `setpriority` on the calling
/// thread sets that thread alone). A process already nicer than that stays as it is.
fn lower_priority() {
    let current = rustix::process::getpriority_process(None).unwrap_or(0);
    if current >= HASH_THREAD_NICE {
        return;
    }
    if let Err(e) = rustix::process::setpriority_process(None, HASH_THREAD_NICE) {
        tracing::warn!(error = %e, "could not lower the priority of a password hashing thread");
    }
}

fn spawn_worker(pool: Arc<Pool>) -> std::io::Result<()> {
    let n = pool.next_name.fetch_add(1, Ordering::Relaxed);
    pool.workers.fetch_add(1, Ordering::SeqCst);
    let worker_pool = pool.clone();
    let spawned = std::thread::Builder::new()
        .name(format!("password-hash-{n}"))
        .spawn(move || work(worker_pool));
    if spawned.is_err() {
        pool.workers.fetch_sub(1, Ordering::SeqCst);
    }
    spawned.map(|_| ())
}

fn work(pool: Arc<Pool>) {
    lower_priority();
    // The loop ends when every sender is gone (the hasher was dropped).
    while let Ok(job) = pool.jobs.recv() {
        if catch_unwind(AssertUnwindSafe(job)).is_err() {
            // The job's caller sees its answer channel closed and reports a 500. This thread
            // may hold state the panic left inconsistent, so a fresh one takes its place.
            tracing::error!("a password hashing job panicked; replacing its worker thread");
            pool.workers.fetch_sub(1, Ordering::SeqCst);
            if let Err(err) = spawn_worker(pool.clone()) {
                tracing::error!(error = %err, "could not replace a password hashing thread");
            }
            return;
        }
    }
    pool.workers.fetch_sub(1, Ordering::SeqCst);
}

impl PasswordHasher {
    /// Starts `concurrency` workers; at most `queue` jobs wait for one.
    pub fn new(concurrency: usize, queue: usize) -> anyhow::Result<Self> {
        let (submit, jobs) = crossbeam_channel::bounded(queue);
        let pool = Arc::new(Pool {
            jobs,
            workers: AtomicUsize::new(0),
            next_name: AtomicUsize::new(0),
        });
        for _ in 0..concurrency.max(1) {
            spawn_worker(pool.clone())?;
        }
        Ok(Self { submit, pool })
    }

    /// The number of live worker threads.
    pub fn workers(&self) -> usize {
        self.pool.workers.load(Ordering::SeqCst)
    }

    /// Runs `f` on a worker; 503 with `Retry-After` when the queue is full.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let (done, answer) = oneshot::channel();
        let job: Job = Box::new(move || {
            // The caller may have gone away (client disconnected); nothing to tell it then.
            let _ = done.send(f());
        });
        match self.submit.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                metrics::counter!("password_hash_rejected_total").increment(1);
                return Err(ApiError::Unavailable {
                    detail: "Server busy, retry shortly",
                    retry_after_secs: Some(1),
                });
            }
            Err(TrySendError::Disconnected(_)) => {
                return Err(ApiError::Internal(anyhow::anyhow!(
                    "password hashing pool is gone"
                )));
            }
        }
        answer
            .await
            .map_err(|_| ApiError::Internal(anyhow::anyhow!("password hashing job panicked")))
    }

    /// Hashes `password` for storage with `scheme`.
    pub async fn hash(&self, password: &str, scheme: Scheme) -> Result<String, ApiError> {
        let password = password.to_owned();
        self.run(move || scheme.hash(&password))
            .await?
            .map_err(ApiError::Internal)
    }

    /// Checks `password` against `stored`, or against a dummy hash of `scheme` when there is no
    /// account, so that both take the same time.
    pub async fn verify(
        &self,
        password: &str,
        stored: Option<&str>,
        scheme: Scheme,
    ) -> Result<Verified, ApiError> {
        let password = password.to_owned();
        let (stored, known) = match stored {
            Some(s) => (s.to_owned(), true),
            None => (scheme.dummy(), false),
        };
        let verified = self.run(move || scheme.verify(&password, &stored)).await?;
        Ok(if known { verified } else { REJECTED })
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
        let hasher = PasswordHasher::new(1, 4).expect("hasher");
        let verified = hasher
            .verify("anything", None, BCRYPT_LOW)
            .await
            .expect("verify");
        assert_eq!(verified, REJECTED);
    }

    #[tokio::test]
    async fn a_full_queue_answers_503_with_retry_after() {
        let hasher = PasswordHasher::new(1, 1).expect("hasher");
        let (started, is_running) = std::sync::mpsc::channel::<()>();
        let (release, hold) = std::sync::mpsc::channel::<()>();
        // One job runs and blocks until released...
        let running = tokio::spawn({
            let h = hasher.clone();
            async move {
                h.run(move || {
                    let _ = started.send(());
                    let _ = hold.recv_timeout(Duration::from_secs(30));
                })
                .await
            }
        });
        tokio::task::spawn_blocking(move || is_running.recv_timeout(Duration::from_secs(30)))
            .await
            .expect("join")
            .expect("the first job started");
        // ...one waits in the queue (submitted on its first poll)...
        let mut queued = std::pin::pin!(hasher.run(|| ()));
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(
            queued.as_mut().poll(&mut cx).is_pending(),
            "queued behind the first"
        );
        // ...and the third finds no room.
        match hasher.run(|| ()).await {
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
    async fn a_panicking_job_is_reported_and_its_worker_replaced() {
        let hasher = PasswordHasher::new(2, 8).expect("hasher");
        assert_eq!(hasher.workers(), 2);
        let failed = hasher.run(|| panic!("boom")).await;
        assert!(matches!(failed, Err(ApiError::Internal(_))), "{failed:?}");
        // The replacement starts asynchronously; then the pool has its size again and works.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while hasher.workers() < 2 && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(hasher.workers(), 2);
        let both: Vec<_> =
            futures_util::future::join_all((0..4).map(|i| hasher.run(move || i * 2))).await;
        assert_eq!(
            both.into_iter()
                .map(|r| r.expect("job"))
                .collect::<Vec<_>>(),
            vec![0, 2, 4, 6]
        );
    }

    /// Workers run at [`HASH_THREAD_NICE`] (or nicer, when the tests themselves run nicer),
    /// and so does a worker that replaced one lost to a panic.
    #[tokio::test]
    async fn workers_run_below_request_threads_but_not_at_the_lowest_priority() {
        let ours = rustix::process::getpriority_process(None).expect("own nice");
        let expected = ours.max(HASH_THREAD_NICE);
        let hasher = PasswordHasher::new(1, 8).expect("hasher");
        let nice = || rustix::process::getpriority_process(None).expect("nice");
        assert_eq!(hasher.run(nice).await.expect("job"), expected);
        assert!(hasher.run(|| panic!("boom")).await.is_err());
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while hasher.workers() < 1 && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(hasher.run(nice).await.expect("job"), expected);
        assert_eq!(nice(), ours, "the caller's own thread keeps its priority");
    }
}
