//! Wall-clock time, read one way everywhere: registration stamps, event
//! stamps and the market's "served at" all come from here.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Whole milliseconds in `d`, saturating.
pub fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Wall-clock milliseconds since the Unix epoch (0 if the clock is before it).
pub fn wall_clock_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(millis)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milliseconds_saturate_and_the_clock_is_past_2020() {
        assert_eq!(millis(Duration::from_micros(1999)), 1);
        assert_eq!(millis(Duration::MAX), u64::MAX);
        assert!(wall_clock_ms() > 1_577_836_800_000);
    }
}
