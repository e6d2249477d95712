//! The threads that run the quantized kernels.
//!
//! A decoding step makes about a hundred short parallel products (tens of microseconds each),
//! separated by small single-threaded tensor operations. Handing each product to a general
//! work-stealing pool costs a sleep and a wake-up per product, as long as the product itself.
//! So, as in llama.cpp, the calling thread takes part in the work and the other workers spin
//! for a short while after a job before they sleep: the next product of the step finds them
//! awake. Work is split statically by thread index.

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{JoinHandle, Thread};
use std::time::{Duration, Instant};

/// How long an idle worker spins before it sleeps.
const SPIN: Duration = Duration::from_micros(500);

/// A job: `f(i)` runs once for each thread index `i` in `0..threads`.
struct Job<'a> {
    f: &'a (dyn Fn(usize) + Sync),
}

struct Shared {
    /// Bumped for each job.
    generation: AtomicUsize,
    /// The current job, valid while `pending > 0`.
    job: AtomicPtr<Job<'static>>,
    /// Workers that have not finished the current job.
    pending: AtomicUsize,
    /// Per worker: asleep (or about to be), so the next job must wake it.
    sleeping: Vec<AtomicBool>,
    /// A worker's part of the current job panicked.
    panicked: AtomicBool,
    quit: AtomicBool,
}

/// A fixed set of threads; `threads() - 1` workers plus the caller.
pub(crate) struct Pool {
    shared: Arc<Shared>,
    workers: Vec<(Thread, Option<JoinHandle<()>>)>,
    /// One job at a time; a second caller meanwhile runs its job alone.
    busy: Mutex<()>,
}

thread_local! {
    /// Set on pool workers and on a caller while its job runs (no nested jobs).
    static IN_JOB: Cell<bool> = const { Cell::new(false) };
}

impl Pool {
    pub(crate) fn new(threads: usize) -> Self {
        let threads = threads.max(1);
        let shared = Arc::new(Shared {
            generation: AtomicUsize::new(0),
            job: AtomicPtr::new(std::ptr::null_mut()),
            pending: AtomicUsize::new(0),
            sleeping: (1..threads).map(|_| AtomicBool::new(false)).collect(),
            panicked: AtomicBool::new(false),
            quit: AtomicBool::new(false),
        });
        let workers = (1..threads)
            .map(|i| {
                let shared = shared.clone();
                let handle = std::thread::Builder::new()
                    .name(format!("aigc-q{i}"))
                    .spawn(move || worker(&shared, i))
                    .expect("spawning a kernel thread");
                (handle.thread().clone(), Some(handle))
            })
            .collect();
        Self { shared, workers, busy: Mutex::new(()) }
    }

    /// Threads taking part in a job, the caller included.
    pub(crate) fn threads(&self) -> usize {
        self.workers.len() + 1
    }

    /// Runs `f(i)` for every `i` in `0..threads()`, `f(0)` on the calling thread, and returns
    /// when all have finished. A panic in any part is resumed here.
    pub(crate) fn run(&self, f: &(dyn Fn(usize) + Sync)) {
        let n = self.threads();
        let guard = if n > 1 && !IN_JOB.get() { self.busy.try_lock().ok() } else { None };
        let Some(_guard) = guard else {
            // One thread, a nested call, or another thread's job running: do it all here.
            (0..n).for_each(f);
            return;
        };
        let shared = &*self.shared;
        let job = Job { f };
        // SAFETY: the pointer is only dereferenced by workers between the generation bump
        // below and their decrement of `pending`; this function does not return (or unwind)
        // before `pending` is back to zero, so `job` outlives every use.
        shared.job.store((&job as *const Job<'_>).cast_mut().cast(), Ordering::Release);
        shared.pending.store(n - 1, Ordering::Release);
        shared.generation.fetch_add(1, Ordering::SeqCst);
        for (i, (thread, _)) in self.workers.iter().enumerate() {
            if shared.sleeping[i].load(Ordering::SeqCst) {
                thread.unpark();
            }
        }
        IN_JOB.set(true);
        let mine = catch_unwind(AssertUnwindSafe(|| f(0)));
        IN_JOB.set(false);
        let mut spins = 0u32;
        while shared.pending.load(Ordering::Acquire) != 0 {
            spins += 1;
            if spins < 1 << 16 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        if let Err(payload) = mine {
            resume_unwind(payload);
        }
        if shared.panicked.swap(false, Ordering::AcqRel) {
            panic!("a quantized kernel thread panicked");
        }
    }
}

fn worker(shared: &Shared, i: usize) {
    IN_JOB.set(true);
    let mut seen = 0;
    loop {
        // Wait for the next generation: spin, then sleep.
        let mut since = Instant::now();
        let mut spins = 0u32;
        loop {
            if shared.quit.load(Ordering::Acquire) {
                return;
            }
            let g = shared.generation.load(Ordering::Acquire);
            if g != seen {
                seen = g;
                break;
            }
            spins = spins.wrapping_add(1);
            if !spins.is_multiple_of(256) || since.elapsed() < SPIN {
                std::hint::spin_loop();
                continue;
            }
            let flag = &shared.sleeping[i - 1];
            flag.store(true, Ordering::SeqCst);
            // Checked after raising the flag: either the caller sees the flag and unparks
            // this thread, or this thread sees the new generation.
            if shared.generation.load(Ordering::SeqCst) == seen
                && !shared.quit.load(Ordering::SeqCst)
            {
                std::thread::park();
            }
            flag.store(false, Ordering::SeqCst);
            since = Instant::now();
        }
        // SAFETY: the caller stored a live job before bumping the generation and waits for
        // `pending` to reach zero before the job goes away.
        let job = unsafe { &*shared.job.load(Ordering::Acquire) };
        if catch_unwind(AssertUnwindSafe(|| (job.f)(i))).is_err() {
            shared.panicked.store(true, Ordering::Release);
        }
        shared.pending.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shared.quit.store(true, Ordering::SeqCst);
        for (thread, handle) in &mut self.workers {
            thread.unpark();
            if let Some(h) = handle.take() {
                let _ = h.join();
            }
        }
    }
}

/// The part of `0..len` that thread `i` of `n` takes, in units of `align`.
pub(crate) fn share(len: usize, i: usize, n: usize, align: usize) -> std::ops::Range<usize> {
    let units = len.div_ceil(align);
    let (q, r) = (units / n, units % n);
    let start = i * q + i.min(r);
    let end = start + q + usize::from(i < r);
    (start * align).min(len)..(end * align).min(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_index_runs_once_per_job() {
        let pool = Pool::new(3);
        for _ in 0..1000 {
            let hits: Vec<AtomicUsize> = (0..3).map(|_| AtomicUsize::new(0)).collect();
            pool.run(&|i| {
                hits[i].fetch_add(1, Ordering::Relaxed);
            });
            assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
        }
        // After the workers went to sleep.
        std::thread::sleep(Duration::from_millis(5));
        let count = AtomicUsize::new(0);
        pool.run(&|_| {
            count.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(count.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn panics_reach_the_caller_and_the_pool_survives() {
        let pool = Pool::new(2);
        let r = catch_unwind(AssertUnwindSafe(|| pool.run(&|i| assert_ne!(i, 1))));
        assert!(r.is_err());
        let count = AtomicUsize::new(0);
        pool.run(&|_| {
            count.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(count.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn shares_cover_the_range() {
        for (len, n, align) in [(10, 3, 1), (1536, 2, 16), (5, 8, 1), (0, 2, 4), (100, 3, 32)] {
            let mut next = 0;
            for i in 0..n {
                let r = share(len, i, n, align);
                assert_eq!(r.start, next);
                next = r.end;
            }
            assert_eq!(next, len);
        }
    }
}
