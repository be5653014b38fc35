//! Shard threads: one current-thread tokio runtime (epoll) per core, with a `LocalSet` so that
//! tasks and their state stay on the thread (`Rc`, `RefCell`, no locks), pinned to a CPU or
//! left to the kernel's scheduler, and what the thread does when it runs out of work ([`Park`]).
//!
//! Sleeping costs a wake-up per event: the scheduler's and the kernel's, about half of what a
//! proxy adds to a loopback round trip (BENCHMARKS.md). The adaptive spin keeps the thread
//! polling for a short while after bytes arrived, so that the answer that usually follows
//! (the broker's PUBACK after the client's PUBLISH) is picked up without that wake-up; it is a
//! task of the runtime, not a patch to it. Every turn it offers the CPU to any thread waiting
//! for it (`sched_yield`), and it stops as soon as one took the CPU for longer than
//! [`CONTENDED`]: the broker or client it has just written to needs that CPU more.

use std::cell::{Cell, RefCell};
use std::future::{Future, poll_fn};
use std::io;
use std::task::{Poll, Waker};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::config::Park;

/// A `sched_yield` that gave the CPU away for longer than this means another thread wanted
/// it: the adaptive spin stops and the shard sleeps.
pub const CONTENDED: Duration = Duration::from_micros(5);

thread_local! {
    /// Reads that brought bytes (and accepted connections) on this thread.
    static ARRIVALS: Cell<u64> = const { Cell::new(0) };
    /// The spinner, parked until the next arrival.
    static PARKED: RefCell<Option<Waker>> = const { RefCell::new(None) };
    /// Turns the spinner has taken on this thread (tests look at it).
    #[cfg(test)]
    static TURNS: Cell<u64> = const { Cell::new(0) };
}

/// Counts an event that usually has a follow-up soon (bytes read, a connection accepted), and
/// wakes the spinner if it sleeps. Cheap: a thread-local counter, and a wake only after idle.
pub fn arrived() {
    ARRIVALS.set(ARRIVALS.get().wrapping_add(1));
    if let Some(waker) = PARKED.take() {
        waker.wake();
    }
}

/// Waits until an arrival after `seen`.
fn next_arrival(seen: u64) -> impl Future<Output = ()> {
    poll_fn(move |cx| {
        if ARRIVALS.get() != seen {
            return Poll::Ready(());
        }
        PARKED.set(Some(cx.waker().clone()));
        Poll::Pending
    })
}

/// The park policy as a task: after each arrival, keeps the runtime polling its I/O driver
/// without sleeping (a yielded task makes tokio poll epoll with a zero timeout) for up to the
/// configured time, or until the next arrival restarts the count.
async fn spin(park: Park) {
    let (max, adaptive) = match park {
        Park::Sleep => return,
        Park::Spin(max) => (max, false),
        Park::Adaptive(max) => (max, true),
    };
    if max.is_zero() {
        return;
    }
    loop {
        let seen = ARRIVALS.get();
        let since = Instant::now();
        while ARRIVALS.get() == seen && since.elapsed() < max {
            #[cfg(test)]
            TURNS.set(TURNS.get() + 1);
            if adaptive {
                let turn = Instant::now();
                std::thread::yield_now();
                if turn.elapsed() > CONTENDED {
                    break;
                }
            }
            tokio::task::yield_now().await;
        }
        if ARRIVALS.get() == seen {
            next_arrival(seen).await;
        }
    }
}

/// Pins the calling thread to `cpu`.
fn pin_to(cpu: usize) -> io::Result<()> {
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("CPU {cpu} is out of range"),
        ));
    }
    // SAFETY: `cpu_set_t` is a plain bit array for which all zeroes is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu` is below CPU_SETSIZE (checked above), so the bit is inside `set`.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: `set` is a live, initialised cpu_set_t and its exact size is passed with it;
    // pid 0 is the calling thread.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A running shard thread.
#[derive(Debug)]
pub struct ShardThread<T>(JoinHandle<Option<T>>);

impl<T> ShardThread<T> {
    /// Waits for the shard's future to finish: `None` if it panicked.
    pub fn join(self) -> Option<T> {
        self.0.join().ok().flatten()
    }
}

/// Starts a shard thread named `name`: pinned to `cpu` when given, parking as `park` says,
/// running the future `make` builds on the thread itself (so it may be `!Send`). Fails if the
/// runtime cannot be built or the thread cannot be pinned, before anything runs.
pub fn spawn<F, Fut, T>(
    name: String,
    cpu: Option<usize>,
    park: Park,
    make: F,
) -> io::Result<ShardThread<T>>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T> + 'static,
    T: Send + 'static,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    let (started, pinned) = std::sync::mpsc::sync_channel(1);
    let handle = std::thread::Builder::new().name(name).spawn(move || {
        if let Err(e) = cpu.map(pin_to).transpose() {
            let _ = started.send(Err(e));
            return None;
        }
        let _ = started.send(Ok(()));
        let local = tokio::task::LocalSet::new();
        Some(local.block_on(&runtime, async move {
            tokio::task::spawn_local(spin(park));
            make().await
        }))
    })?;
    match pinned.recv() {
        Ok(Ok(())) => Ok(ShardThread(handle)),
        Ok(Err(e)) => {
            let _ = handle.join();
            Err(io::Error::new(
                e.kind(),
                format!("cannot pin to CPU {}: {e}", cpu.unwrap_or_default()),
            ))
        }
        Err(_) => Err(io::Error::other("the shard thread ended at its start")),
    }
}

/// The CPUs this thread may run on (`taskset`, cgroups), in order; at least one.
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: all zeroes is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a live cpu_set_t and its exact size is passed with it; pid 0 is the
    // calling thread.
    let rc =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    let cpus: Vec<usize> = if rc == 0 {
        (0..libc::CPU_SETSIZE as usize)
            // SAFETY: every `c` is below CPU_SETSIZE, so the bit is inside `set`.
            .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
            .collect()
    } else {
        Vec::new()
    };
    if cpus.is_empty() { vec![0] } else { cpus }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shard_runs_its_future_on_its_cpu_and_returns_its_value() {
        let cpu = allowed_cpus()[0];
        let shard = spawn(
            "test-shard".into(),
            Some(cpu),
            Park::default(),
            move || async move {
                // A local task (not Send) on the shard's own set.
                let local = std::rc::Rc::new(3);
                let task = tokio::task::spawn_local(async move { *local + 4 });
                (task.await.unwrap_or(0), allowed_cpus())
            },
        )
        .unwrap();
        assert_eq!(shard.join(), Some((7, vec![cpu])));
    }

    #[test]
    fn a_cpu_the_process_may_not_use_is_an_error_at_start() {
        let err = spawn("test-shard".into(), Some(1023), Park::Sleep, || async {}).unwrap_err();
        assert!(err.to_string().contains("CPU 1023"), "{err}");
    }

    /// CPU time this thread has used.
    fn thread_cpu() -> Duration {
        let mut t = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `t` is a live timespec for the call to fill.
        unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
        Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
    }

    #[test]
    fn the_spin_stops_when_no_more_arrives() {
        // One arrival, then 100 ms with nothing: a spin of 2 ms, then sleep. A spin that
        // never stopped would use the whole 100 ms of CPU; the timer still fires.
        let shard = spawn(
            "test-shard".into(),
            None,
            Park::Spin(Duration::from_millis(2)),
            || async {
                arrived();
                let (cpu, t) = (thread_cpu(), Instant::now());
                tokio::time::sleep(Duration::from_millis(100)).await;
                (thread_cpu() - cpu, t.elapsed())
            },
        )
        .unwrap();
        let (cpu, waited) = shard.join().unwrap();
        assert!(waited >= Duration::from_millis(100), "{waited:?}");
        assert!(
            cpu < Duration::from_millis(50),
            "spun on while idle: {cpu:?}"
        );
    }

    #[test]
    fn only_a_shard_that_spins_takes_spin_turns() {
        // An arrival, then 10 ms of nothing: the spinner takes turns after it only when the
        // shard is set to spin.
        let turns = |park| {
            spawn("test-shard".into(), None, park, || async {
                arrived();
                tokio::time::sleep(Duration::from_millis(10)).await;
                TURNS.get()
            })
            .unwrap()
            .join()
            .unwrap()
        };
        assert_eq!(turns(Park::Sleep), 0);
        assert!(turns(Park::Spin(Duration::from_millis(2))) > 0);
    }
}
