//! CPU time spent by this process's threads, grouped by thread name: each side of a
//! comparison runs on its own named runtime, so its cost can be told apart from the other's
//! although both live in one process. Threads a side starts of its own (the client's hashing
//! thread) have other names and may be gone when a round ends: [`of_process`] counts them too,
//! so one side's cost is the process's minus the other's.
//!
//! The calling thread and the whole process ask the kernel (`getrusage`); other threads can
//! only be read from `/proc/self/task`, in `schedstat`, which counts nanoseconds rather than
//! clock ticks.

use nix::sys::resource::{UsageWho, getrusage};
use nix::sys::time::TimeValLike;
use std::time::Duration;

/// Total CPU time of the live threads whose name starts with `prefix` (Linux only; zero
/// elsewhere). Threads that exited are not counted: keep them alive while measuring.
pub fn of_threads(prefix: &str) -> Duration {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Duration::ZERO;
    };
    let mut total = Duration::ZERO;
    for task in tasks.flatten() {
        let path = task.path();
        let named = std::fs::read_to_string(path.join("comm"))
            .is_ok_and(|comm| comm.trim_end().starts_with(prefix));
        if !named {
            continue;
        }
        // schedstat: nanoseconds on the CPU, nanoseconds waiting, time slices.
        let on_cpu = std::fs::read_to_string(path.join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok());
        total += Duration::from_nanos(on_cpu.unwrap_or(0));
    }
    total
}

/// CPU time of the calling thread so far (Linux only; zero elsewhere).
pub fn of_this_thread() -> Duration {
    // RUSAGE_THREAD is Linux's (and some BSDs'), not POSIX.
    #[cfg(target_os = "linux")]
    let time = used_by(UsageWho::RUSAGE_THREAD);
    #[cfg(not(target_os = "linux"))]
    let time = Duration::ZERO;
    time
}

/// CPU time of the whole process so far, threads that exited included.
pub fn of_process() -> Duration {
    used_by(UsageWho::RUSAGE_SELF)
}

/// User and system time of `who`, to the microsecond (zero if the kernel will not say).
fn used_by(who: UsageWho) -> Duration {
    getrusage(who).map_or(Duration::ZERO, |usage| {
        let micros = usage.user_time().num_microseconds() + usage.system_time().num_microseconds();
        Duration::from_micros(u64::try_from(micros).unwrap_or(0))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// Keeps the calling thread on the CPU until it has used `time` of it: by its own clock,
    /// not the wall's, so that a loaded machine makes the test slower, never wrong.
    fn spin_for(time: Duration) {
        let start = of_this_thread();
        let mut x = 0u64;
        while of_this_thread().saturating_sub(start) < time {
            for _ in 0..10_000 {
                x = x.wrapping_mul(31).wrapping_add(1);
            }
        }
        std::hint::black_box(x);
    }

    #[test]
    fn the_calling_thread_is_counted_to_the_microsecond() {
        let before = of_this_thread();
        spin_for(Duration::from_millis(20));
        let spent = of_this_thread().saturating_sub(before);
        assert!(spent >= Duration::from_millis(20), "{spent:?}");
        assert!(of_process() >= spent, "the process counts its threads");
    }

    #[test]
    fn a_busy_named_thread_is_counted_and_others_are_not() {
        let (spun, measured) = (mpsc::channel(), mpsc::channel::<()>());
        let busy = std::thread::Builder::new()
            .name("cpu-test-busy".into())
            .spawn(move || {
                spin_for(Duration::from_millis(50));
                let _ = spun.0.send(());
                let _ = measured.1.recv(); // alive until counted: exited threads are not
            })
            .unwrap_or_else(|e| panic!("{e}"));
        spun.1
            .recv()
            .unwrap_or_else(|_| panic!("the thread panicked"));
        let counted = of_threads("cpu-test-busy");
        assert!(counted >= Duration::from_millis(30), "{counted:?}");
        assert_eq!(of_threads("no-such-thread-name"), Duration::ZERO);
        let _ = measured.0.send(());
        busy.join()
            .unwrap_or_else(|_| panic!("the thread panicked"));
    }

    #[test]
    fn a_thread_that_exited_still_counts_for_the_process() {
        let before = of_process();
        std::thread::spawn(|| spin_for(Duration::from_millis(100)))
            .join()
            .unwrap_or_else(|_| panic!("the thread panicked"));
        let spent = of_process().saturating_sub(before);
        assert!(spent >= Duration::from_millis(60), "{spent:?}");
    }
}
