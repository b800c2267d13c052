//! Password hashing: Argon2id (m=19456 KiB, t=2, p=1) on a small pool of dedicated worker
//! threads fed through a bounded queue, so that a login flood never starves other requests.
//!
//! - The workers run at the lowest priority of the normal class (`SCHED_BATCH`, nice 19): a
//!   login flood uses the CPU that nothing else wants. Not `SCHED_IDLE`: Linux counts a core
//!   running only idle-class threads as free and wakes request threads there.
//! - Priority alone is not enough where the kernel does not preempt a running thread when
//!   another wakes on its core (measured on the benchmark machine: the woken request waits for
//!   the next 4 ms tick, whatever the priorities). So while requests other than logins are
//!   being served (in the last [`RESERVE_WINDOW`]):
//!   - with two workers or more, the last one takes no job, and a core stays free for them;
//!   - the others hash in time slices: a per-thread timer interrupts the hash every 250 µs
//!     and the worker yields the CPU to whatever waits for it (module `slices`).
//!
//!   A login flood alone still uses every core, without slices.
//! - Each worker owns one 19 MiB Argon2 work area, allocated on its first hash and reused: the
//!   memory held by hashing is fixed (`PASSWORD_HASH_CONCURRENCY` × 19 MiB), and no hash pays
//!   for allocating and zeroing 19 MiB again.
//! - When the queue is full the caller gets 503 with `Retry-After` instead of waiting without
//!   limit.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use argon2::password_hash::phc::{Output, PasswordHash};
use argon2::{Algorithm, Argon2, Block, Params, PasswordVerifier as _, Version};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use tokio::sync::oneshot;

use crate::error::ApiError;

/// The memory cost in KiB, which is also the number of 1 KiB blocks of a work area.
const MEMORY_KIB: u32 = 19_456;
/// The PHC prefix of a hash made with exactly our parameters.
const CURRENT_PREFIX: &str = "$argon2id$v=19$m=19456,t=2,p=1$";
const SALT_LEN: usize = 16;
/// How long after another request the last worker keeps a core free.
pub const RESERVE_WINDOW: Duration = Duration::from_millis(50);
const OUTPUT_LEN: usize = 32;

/// The outcome of checking a password against a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    pub ok: bool,
    /// The stored hash is bcrypt or has other parameters: store a fresh Argon2id hash.
    pub needs_rehash: bool,
}

const REJECTED: Verified = Verified {
    ok: false,
    needs_rehash: false,
};

fn argon2() -> Argon2<'static> {
    // OWASP's recommended Argon2id parameters; API.md §6 fixes them for the AutoBot backend.
    #[expect(
        clippy::unwrap_used,
        reason = "constant parameters that are known to be valid"
    )]
    let params = Params::new(MEMORY_KIB, 2, 1, Some(OUTPUT_LEN)).unwrap();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// A reusable Argon2 work area (19 MiB).
pub struct WorkArea(Vec<Block>);

impl WorkArea {
    pub fn new() -> Self {
        Self(vec![Block::default(); MEMORY_KIB as usize])
    }

    /// Hashes `password` into an Argon2id PHC string with a fresh random salt.
    pub fn hash(&mut self, password: &str) -> anyhow::Result<String> {
        let salt: [u8; SALT_LEN] = rand::random();
        let mut out = [0u8; OUTPUT_LEN];
        argon2()
            .hash_password_into_with_memory(password.as_bytes(), &salt, &mut out, &mut self.0)
            .map_err(|e| anyhow::anyhow!("argon2 hashing failed: {e}"))?;
        Ok(format!(
            "{CURRENT_PREFIX}{}${}",
            STANDARD_NO_PAD.encode(salt),
            STANDARD_NO_PAD.encode(out)
        ))
    }

    /// Verifies `password` against an Argon2 PHC string or a bcrypt hash.
    pub fn verify(&mut self, password: &str, stored: &str) -> Verified {
        if ["$2a$", "$2b$", "$2y$"]
            .iter()
            .any(|p| stored.starts_with(p))
        {
            let ok = bcrypt::verify(password, stored).unwrap_or(false);
            return Verified {
                ok,
                needs_rehash: ok,
            };
        }
        let Ok(parsed) = PasswordHash::new(stored) else {
            return REJECTED;
        };
        if !stored.starts_with(CURRENT_PREFIX) {
            // Other Argon2 parameters (an import): the library allocates their memory itself.
            let ok = argon2()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok();
            return Verified {
                ok,
                needs_rehash: ok,
            };
        }
        let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
            return REJECTED;
        };
        let mut out = [0u8; OUTPUT_LEN];
        let computed = argon2()
            .hash_password_into_with_memory(password.as_bytes(), salt, &mut out, &mut self.0)
            .ok()
            .and_then(|()| Output::new(&out).ok());
        Verified {
            // `Output`'s equality is constant-time.
            ok: computed.is_some_and(|c| c == *expected),
            needs_rehash: false,
        }
    }
}

impl Default for WorkArea {
    fn default() -> Self {
        Self::new()
    }
}

/// Hashes synchronously (CLI and tests; the server uses [`PasswordHasher::hash`]).
pub fn hash_blocking(password: &str) -> anyhow::Result<String> {
    WorkArea::new().hash(password)
}

/// Verifies synchronously (tests and benchmarks; the server uses [`PasswordHasher::verify`]).
pub fn verify_blocking(password: &str, stored: &str) -> Verified {
    WorkArea::new().verify(password, stored)
}

type Job = Box<dyn FnOnce(&mut WorkArea) + Send>;

/// When a request other than a login was last seen, for the worker that stands aside.
struct Activity {
    window: Duration,
    epoch: Instant,
    /// Milliseconds since `epoch`, plus one (0: never).
    last_request_ms: AtomicU64,
}

impl Activity {
    fn note(&self) {
        let now = self.epoch.elapsed().as_millis() as u64 + 1;
        self.last_request_ms.store(now, Ordering::Relaxed);
    }

    fn recent(&self) -> bool {
        let last = self.last_request_ms.load(Ordering::Relaxed);
        let now = self.epoch.elapsed().as_millis() as u64 + 1;
        last != 0 && now.saturating_sub(last) < self.window.as_millis() as u64
    }
}

struct Inner {
    jobs: mpsc::Sender<Job>,
    /// Jobs queued or running.
    in_flight: Arc<AtomicUsize>,
    limit: usize,
    /// A real hash of a random password, verified when the user does not exist so that an
    /// unknown username costs the same time as a wrong password.
    dummy_hash: String,
    activity: Arc<Activity>,
}

/// The shared password hasher; cheap to clone. Its workers stop when the last clone is dropped.
#[derive(Clone)]
pub struct PasswordHasher(Arc<Inner>);

/// Lowers the calling thread to `SCHED_BATCH` at nice 19 (or, failing that, to nice 19).
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        use thread_priority::unix::{
            NormalThreadSchedulePolicy, ThreadSchedulePolicy, set_thread_priority_and_policy,
            thread_native_id,
        };
        let batch = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Batch);
        if set_thread_priority_and_policy(
            thread_native_id(),
            thread_priority::ThreadPriority::Min,
            batch,
        )
        .is_ok()
        {
            return;
        }
    }
    if let Err(e) =
        thread_priority::set_current_thread_priority(thread_priority::ThreadPriority::Min)
    {
        tracing::warn!(error = ?e, "could not lower the priority of a password hashing thread");
    }
}

/// Short time slices for a hashing thread: while armed, a timer interrupts the thread every
/// [`slices::SLICE`] and it yields the CPU to any thread waiting for it.
///
/// A hash runs for 10–20 ms without a system call. Where the kernel does not preempt it when a
/// request thread wakes on its core (measured on the benchmark machine: the request then waits
/// for the next 4 ms tick, whatever the priorities), these yields bound that wait to a slice.
#[cfg(target_os = "linux")]
mod slices {
    // The one place with unsafe code: installing a signal handler.
    #![allow(unsafe_code)]

    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    use nix::sys::signal::{SaFlags, SigAction, SigEvent, SigHandler, SigSet, SigevNotify, Signal};
    use nix::sys::time::TimeSpec;
    use nix::sys::timer::{Expiration, Timer, TimerSetTimeFlags};
    use nix::time::ClockId;

    pub const SLICE: Duration = Duration::from_micros(250);
    /// Unused otherwise in this process (it reports out-of-band socket data only to a process
    /// that asked for it with `F_SETOWN`).
    const SIGNAL: Signal = Signal::SIGURG;

    /// Slices ended so far (tests read it; an atomic add is async-signal-safe).
    pub static ENDED: AtomicU64 = AtomicU64::new(0);

    extern "C" fn end_of_slice(_: std::ffi::c_int) {
        ENDED.fetch_add(1, Ordering::Relaxed);
        // sched_yield(2) is async-signal-safe.
        std::thread::yield_now();
    }

    fn install_handler() -> bool {
        static INSTALLED: OnceLock<bool> = OnceLock::new();
        *INSTALLED.get_or_init(|| {
            let action = SigAction::new(
                SigHandler::Handler(end_of_slice),
                SaFlags::SA_RESTART,
                SigSet::empty(),
            );
            // SAFETY: the handler only calls sched_yield, which is async-signal-safe, and
            // SIGURG has no other handler in this process.
            unsafe { nix::sys::signal::sigaction(SIGNAL, &action) }.is_ok()
        })
    }

    /// The calling thread's slice timer.
    pub struct Slices(Timer);

    impl Slices {
        /// A timer for the calling thread, or `None` where timers or the handler are refused.
        pub fn for_this_thread() -> Option<Self> {
            if !install_handler() {
                return None;
            }
            let event = SigEvent::new(SigevNotify::SigevThreadId {
                signal: SIGNAL,
                thread_id: nix::unistd::gettid().as_raw(),
                si_value: 0,
            });
            Timer::new(ClockId::CLOCK_MONOTONIC, event).ok().map(Self)
        }

        pub fn start(&mut self) {
            let _ = self.0.set(
                Expiration::Interval(TimeSpec::from_duration(SLICE)),
                TimerSetTimeFlags::empty(),
            );
        }

        #[cfg(test)]
        pub fn armed(&self) -> bool {
            self.0.get().ok().flatten().is_some()
        }

        pub fn stop(&mut self) {
            // A zero expiration disarms the timer.
            let _ = self.0.set(
                Expiration::OneShot(TimeSpec::new(0, 0)),
                TimerSetTimeFlags::empty(),
            );
        }
    }
}

/// Runs jobs until the hasher is dropped. While other requests are being served (`activity`),
/// a worker that must `stand_aside` takes no job, and the others hash in short time slices.
fn worker(jobs: Arc<Mutex<mpsc::Receiver<Job>>>, activity: Arc<Activity>, stand_aside: bool) {
    const RECHECK: Duration = Duration::from_millis(5);
    lower_priority();
    #[cfg(target_os = "linux")]
    let mut slices = slices::Slices::for_this_thread();
    #[cfg(target_os = "linux")]
    if slices.is_none() {
        tracing::warn!("password hashing runs without time slices (no per-thread timer)");
    }
    let mut area: Option<WorkArea> = None;
    loop {
        if stand_aside && activity.recent() {
            std::thread::sleep(RECHECK);
            continue;
        }
        // The lock is held only while waiting for a job, never while hashing. The worker that
        // stands aside looks again once it holds the lock (it may have waited long for it),
        // and waits for a job in short turns, so that it notices new activity while idle.
        let job = match jobs.lock() {
            Err(_) => return,
            Ok(receiver) if !stand_aside => receiver.recv().map_err(|_| true),
            Ok(_) if activity.recent() => Err(false),
            Ok(receiver) => receiver
                .recv_timeout(RECHECK)
                .map_err(|e| matches!(e, mpsc::RecvTimeoutError::Disconnected)),
        };
        let job = match job {
            Ok(job) => job,
            Err(true) => return, // the hasher was dropped
            Err(false) => continue,
        };
        // Slices cost a signal every 250 µs: only worth it when other requests may wait.
        #[cfg(target_os = "linux")]
        let sliced = match slices.as_mut() {
            Some(slices) if activity.recent() => {
                slices.start();
                Some(slices)
            }
            _ => None,
        };
        job(area.get_or_insert_with(WorkArea::new));
        #[cfg(target_os = "linux")]
        if let Some(slices) = sliced {
            slices.stop();
        }
    }
}

impl PasswordHasher {
    /// A hasher running at most `concurrency` hashes at once, with at most `queue` more waiting.
    pub fn new(concurrency: usize, queue: usize) -> anyhow::Result<Self> {
        Self::with_reserve_window(concurrency, queue, RESERVE_WINDOW)
    }

    fn with_reserve_window(
        concurrency: usize,
        queue: usize,
        window: Duration,
    ) -> anyhow::Result<Self> {
        let concurrency = concurrency.max(1);
        let random: [u8; 24] = rand::random();
        let dummy_hash = hash_blocking(&STANDARD_NO_PAD.encode(random))?;
        let (sender, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        let activity = Arc::new(Activity {
            window,
            epoch: Instant::now(),
            last_request_ms: AtomicU64::new(0),
        });
        for i in 0..concurrency {
            let receiver = receiver.clone();
            let (activity, stand_aside) =
                (activity.clone(), concurrency > 1 && i == concurrency - 1);
            std::thread::Builder::new()
                .name(format!("password-hash-{i}"))
                .spawn(move || worker(receiver, activity, stand_aside))?;
        }
        Ok(Self(Arc::new(Inner {
            jobs: sender,
            in_flight: Arc::new(AtomicUsize::new(0)),
            limit: concurrency + queue,
            dummy_hash,
            activity,
        })))
    }

    /// Records that a request other than a login is being served: for [`RESERVE_WINDOW`], the
    /// last worker leaves its core to such requests and the others hash in time slices.
    pub fn note_other_request(&self) {
        self.0.activity.note();
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut WorkArea) -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let inner = &self.0;
        if inner.in_flight.fetch_add(1, Ordering::SeqCst) >= inner.limit {
            inner.in_flight.fetch_sub(1, Ordering::SeqCst);
            metrics::counter!("password_hash_rejected_total").increment(1);
            return Err(ApiError::Unavailable {
                detail: "Server busy, retry shortly",
                retry_after_secs: Some(1),
            });
        }
        // The slot is given back when the job ends, even if the request was abandoned.
        let slot = InFlight(inner.in_flight.clone());
        let (done, result) = oneshot::channel();
        let span = tracing::Span::current();
        let job: Job = Box::new(move |area| {
            let _slot = slot;
            let _ = done.send(span.in_scope(|| work(area)));
        });
        inner
            .jobs
            .send(job)
            .map_err(|_| ApiError::Internal(anyhow::anyhow!("password hashing workers stopped")))?;
        result
            .await
            .map_err(|_| ApiError::Internal(anyhow::anyhow!("password hashing job was lost")))
    }

    /// Hashes a password into an Argon2id PHC string.
    pub async fn hash(&self, password: &str) -> Result<String, ApiError> {
        let password = password.to_owned();
        self.run(move |area| area.hash(&password))
            .await?
            .map_err(ApiError::Internal)
    }

    /// Verifies `password` against `stored`, or against a dummy hash when there is no user.
    pub async fn verify(&self, password: &str, stored: Option<&str>) -> Result<Verified, ApiError> {
        let password = password.to_owned();
        let (hash, real) = match stored {
            Some(h) => (h.to_owned(), true),
            None => (self.0.dummy_hash.clone(), false),
        };
        let verified = self.run(move |area| area.verify(&password, &hash)).await?;
        Ok(if real { verified } else { REJECTED })
    }
}

/// One queued or running job, counted until it is dropped.
struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argon2id_phc_with_fixed_parameters() {
        let hash = hash_blocking("correct horse").expect("hash");
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert_eq!(
            verify_blocking("correct horse", &hash),
            Verified {
                ok: true,
                needs_rehash: false
            }
        );
        assert!(!verify_blocking("wrong horse", &hash).ok);
        assert!(!verify_blocking("x", "not a hash").ok);
    }

    #[test]
    fn bcrypt_hashes_verify_and_ask_for_an_upgrade() {
        let hash = bcrypt::hash("legacy-pass", 4).expect("bcrypt");
        assert_eq!(
            verify_blocking("legacy-pass", &hash),
            Verified {
                ok: true,
                needs_rehash: true
            }
        );
        assert!(!verify_blocking("other", &hash).ok);
    }

    #[test]
    fn a_reused_work_area_agrees_with_the_argon2_library() {
        let mut area = WorkArea::new();
        let ours = area.hash("correct horse").expect("hash");
        // What the AutoBot backend does with a stored hash: a plain library verification.
        let parsed = PasswordHash::new(&ours).expect("PHC string");
        assert!(argon2().verify_password(b"correct horse", &parsed).is_ok());
        assert!(argon2().verify_password(b"wrong horse", &parsed).is_err());
        // A hash made by the library verifies in a work area that was used before.
        let theirs = argon2::PasswordHasher::hash_password(&argon2(), b"battery staple")
            .expect("library hash")
            .to_string();
        for _ in 0..2 {
            assert!(!area.verify("wrong", &theirs).ok);
            assert_eq!(
                area.verify("battery staple", &theirs),
                Verified {
                    ok: true,
                    needs_rehash: false
                }
            );
        }
    }

    #[test]
    fn other_argon2_parameters_verify_and_ask_for_an_upgrade() {
        let weak = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(4096, 1, 1, None).expect("params"),
        );
        let hash = argon2::PasswordHasher::hash_password(&weak, b"imported")
            .expect("hash")
            .to_string();
        assert_eq!(
            verify_blocking("imported", &hash),
            Verified {
                ok: true,
                needs_rehash: true
            }
        );
        assert!(!verify_blocking("other", &hash).ok);
    }

    /// The scheduling policy and nice value of each thread of this process named `prefix…`.
    #[cfg(target_os = "linux")]
    fn thread_priorities(prefix: &str) -> Vec<(String, String)> {
        let mut found = Vec::new();
        for task in std::fs::read_dir("/proc/self/task")
            .expect("tasks")
            .flatten()
        {
            let name = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            if !name.starts_with(prefix) {
                continue;
            }
            let sched = std::fs::read_to_string(task.path().join("sched")).unwrap_or_default();
            let policy = sched
                .lines()
                .find(|l| l.starts_with("policy"))
                .and_then(|l| l.split(':').nth(1))
                .unwrap_or("")
                .trim()
                .to_owned();
            // The fields after the command name, which ends with ')': nice is the 17th.
            let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
            let nice = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(16))
                .unwrap_or("")
                .to_owned();
            found.push((policy, nice));
        }
        found
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn hashing_threads_run_at_the_lowest_normal_priority() {
        let hasher = PasswordHasher::new(2, 4).expect("hasher");
        let hash = hasher.hash("correct horse").await.expect("hash");
        assert!(
            hasher
                .verify("correct horse", Some(&hash))
                .await
                .expect("verify")
                .ok
        );
        let found = thread_priorities("password-hash");
        assert!(found.len() >= 2, "{found:?}");
        // Policy 3 is SCHED_BATCH.
        assert!(
            found
                .iter()
                .all(|(policy, nice)| policy == "3" && nice == "19"),
            "{found:?}"
        );
    }

    /// The most jobs that ran at once out of `jobs` submitted together, each taking 100 ms.
    async fn most_at_once(hasher: &PasswordHasher, jobs: usize) -> usize {
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let mut all = Vec::new();
        for _ in 0..jobs {
            let (running, most) = (running.clone(), most.clone());
            all.push(hasher.run(move |_| {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(100));
                running.fetch_sub(1, Ordering::SeqCst);
            }));
        }
        for done in futures_util::future::join_all(all).await {
            done.expect("job");
        }
        most.load(Ordering::SeqCst)
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn an_armed_slice_timer_interrupts_the_thread_until_stopped() {
        fn busy(duration: Duration) {
            let until = Instant::now() + duration;
            while Instant::now() < until {
                std::hint::spin_loop();
            }
        }
        let mut slices = slices::Slices::for_this_thread().expect("a per-thread timer");
        let before = slices::ENDED.load(Ordering::SeqCst);
        slices.start();
        assert!(slices.armed());
        busy(Duration::from_millis(100));
        slices.stop();
        let during = slices::ENDED.load(Ordering::SeqCst) - before;
        // 400 slices of 250 µs; a loaded machine may run this thread for far less of the time.
        assert!(during >= 5, "{during} slices ended in 100 ms");
        assert!(!slices.armed(), "stopped between jobs");
    }

    #[tokio::test]
    async fn one_worker_stands_aside_while_other_requests_are_served() {
        // A long window, so that the test does not depend on how fast threads get scheduled.
        let window = Duration::from_secs(1);
        let hasher = PasswordHasher::with_reserve_window(2, 8, window).expect("hasher");
        assert_eq!(
            most_at_once(&hasher, 4).await,
            2,
            "alone, logins use every worker"
        );

        hasher.note_other_request();
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(most_at_once(&hasher, 4).await, 1, "a core is kept free");

        tokio::time::sleep(window).await;
        assert_eq!(
            most_at_once(&hasher, 4).await,
            2,
            "and given back afterwards"
        );
    }
}
