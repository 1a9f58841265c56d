//! CPU time spent by this process's threads, grouped by thread name, read from /proc: each side
//! of a comparison runs on its own named runtime, so its cost can be told apart from the
//! other's although both live in one process. Threads a side starts of its own (the client's
//! hashing thread) have other names and may be gone when a round ends: [`of_process`] counts
//! them too, so one side's cost is the process's minus the other's.

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
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(Duration::ZERO, Duration::from_nanos)
}

/// CPU time of the whole process so far, threads that exited included (Linux only; zero
/// elsewhere), to the clock tick (10 ms).
pub fn of_process() -> Duration {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return Duration::ZERO;
    };
    // The fields after the command name, which is in parentheses and may hold spaces:
    // utime and stime are the 12th and 13th of them, in ticks of 1/100 s.
    let ticks = stat.rfind(')').map_or(0, |end| {
        stat[end + 1..]
            .split_whitespace()
            .skip(11)
            .take(2)
            .filter_map(|f| f.parse::<u64>().ok())
            .sum()
    });
    Duration::from_millis(ticks * 10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_named_thread_is_counted_and_others_are_not() {
        let busy = std::thread::Builder::new()
            .name("cpu-test-busy".into())
            .spawn(|| {
                let start = std::time::Instant::now();
                let mut x = 0u64;
                while start.elapsed() < Duration::from_millis(50) {
                    x = x.wrapping_mul(31).wrapping_add(1);
                }
                std::hint::black_box(x);
                std::thread::sleep(Duration::from_millis(200));
            })
            .unwrap_or_else(|e| panic!("{e}"));
        std::thread::sleep(Duration::from_millis(100));
        let counted = of_threads("cpu-test-busy");
        assert!(counted >= Duration::from_millis(30), "{counted:?}");
        assert_eq!(of_threads("no-such-thread-name"), Duration::ZERO);
        busy.join()
            .unwrap_or_else(|_| panic!("the thread panicked"));
    }

    #[test]
    fn a_thread_that_exited_still_counts_for_the_process() {
        let before = of_process();
        std::thread::spawn(|| {
            let start = std::time::Instant::now();
            let mut x = 0u64;
            while start.elapsed() < Duration::from_millis(100) {
                x = x.wrapping_mul(31).wrapping_add(1);
            }
            std::hint::black_box(x);
        })
        .join()
        .unwrap_or_else(|_| panic!("the thread panicked"));
        let spent = of_process().saturating_sub(before);
        assert!(spent >= Duration::from_millis(60), "{spent:?}");
    }
}
