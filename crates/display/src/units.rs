//! Sizes for people.

/// `1536` -> `1.5 KiB`: binary units, one decimal.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Time left at `rate_bps` for the bytes from `bytes` to `size`, as `ETA m:ss` (`ETA --:--`
/// when nothing moves).
pub fn eta(bytes: u64, size: u64, rate_bps: u64) -> String {
    if rate_bps == 0 {
        return "ETA --:--".into();
    }
    let secs = (size.saturating_sub(bytes) as f64 * 8.0 / rate_bps as f64).round() as u64;
    format!("ETA {}:{:02}", secs / 60, secs % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eta_reads_well() {
        assert_eq!(eta(0, 1_000_000, 8_000_000), "ETA 0:01");
        assert_eq!(eta(0, 100_000_000, 8_000_000), "ETA 1:40");
        assert_eq!(eta(5, 10, 0), "ETA --:--");
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(5 * 1024 * 1024 * 1024), "5.0 GiB");
    }
}
