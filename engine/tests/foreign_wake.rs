//! A shard woken from another thread (the chain executor answering a cache miss) must run the
//! woken task, however the wake races with the shard going to sleep or spinning. glommio
//! needed two patches for this (a fence pairing, and a lost wake-up this test found); tokio's
//! current-thread runtime and the engine's spin task ([`flytrap_engine::runtime`]) must keep
//! it. A lost wake-up leaves this test's shard asleep for good (it has no timers), which the
//! deadline turns into a failure.

use std::future::poll_fn;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};
use std::thread;
use std::time::Duration;

use flytrap_engine::Park;
use flytrap_engine::runtime;

const ROUNDS: u64 = 20_000;

/// What the foreign thread and the task share: the round the foreign thread has released,
/// and the waker the task left for the next round.
#[derive(Default)]
struct Baton {
    released: AtomicU64,
    waker: Mutex<Option<(u64, Waker)>>,
}

/// Runs `ROUNDS` hand-overs: the task waits for round `i`, the foreign thread releases it
/// after a pause of 0 to ~150 µs (so the shard is spinning, about to sleep or asleep) and
/// wakes the task from its own thread. Each round counts as an arrival, so a shard that
/// spins does so while it waits. Panics if the task has not finished every round
/// by the deadline.
fn hand_over(cpu: Option<usize>, park: Park) {
    let baton = Arc::new(Baton::default());
    let (done_tx, done_rx) = mpsc::channel();
    let task_baton = baton.clone();
    let executor = runtime::spawn("foreign-wake".into(), cpu, park, move || async move {
        for round in 1..=ROUNDS {
            runtime::arrived();
            poll_fn(|cx| {
                if task_baton.released.load(Ordering::Acquire) >= round {
                    return Poll::Ready(());
                }
                *task_baton.waker.lock().unwrap() = Some((round, cx.waker().clone()));
                // Released between the first look and the waker being left: no wake
                // will come for it, so look again.
                if task_baton.released.load(Ordering::Acquire) >= round {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            })
            .await;
        }
        done_tx.send(()).unwrap();
    })
    .expect("the shard starts");

    let foreign = thread::spawn(move || {
        for round in 1..=ROUNDS {
            // Wait until the task has left its waker for this round.
            let waker = loop {
                // A waker left for an earlier round (a spurious poll) is dropped here.
                if let Some((r, w)) = baton.waker.lock().unwrap().take()
                    && r == round
                {
                    break w;
                }
                thread::yield_now();
            };
            let pause = (round * 7919) % 150;
            if pause > 0 {
                thread::sleep(Duration::from_micros(pause));
            }
            baton.released.store(round, Ordering::Release);
            waker.wake();
        }
    });

    done_rx
        .recv_timeout(Duration::from_secs(120))
        .expect("the task finished every round: no wake-up from the other thread was lost");
    foreign.join().unwrap();
    executor.join().expect("the shard ran to its end");
}

#[test]
fn wakes_from_another_thread_reach_a_sleeping_shard() {
    hand_over(None, Park::Sleep);
}

#[test]
fn wakes_from_another_thread_reach_a_spinning_shard() {
    // Pinned, and the engine's default adaptive spin.
    hand_over(Some(runtime::allowed_cpus()[0]), Park::default());
}

#[test]
fn wakes_from_another_thread_reach_a_shard_that_always_spins() {
    hand_over(None, Park::Spin(Duration::from_micros(200)));
}
