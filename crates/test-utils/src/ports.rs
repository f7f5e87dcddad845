//! Free ports for test servers, one allocator for every test.
//!
//! Tests run on parallel threads of one process, so a port is reserved in a process-wide set
//! before anything binds it (two tests probing the same free port at once would otherwise both
//! take it, and one would talk to the other's server). Ports stay in 20000..32700, below
//! Linux's ephemeral range (32768+), so an outgoing connection cannot take a server's port
//! between the probe and the bind.

use std::sync::Mutex;

static TAKEN: Mutex<Vec<(u16, u16)>> = Mutex::new(Vec::new());

const LOW: u16 = 20_000;
const HIGH: u16 = 32_700;

/// `count` consecutive ports, all free now and held by no other test of this process; returns
/// the first.
pub fn free_range(count: u16) -> u16 {
    assert!(count > 0 && count <= 1000, "ask for 1..=1000 ports");
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let slots = (HIGH - LOW) / count;
    let seed = (std::process::id() ^ nanos) as u16;
    let mut taken = TAKEN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    for attempt in 0..slots {
        let base = LOW + (seed.wrapping_add(attempt) % slots) * count;
        let end = base + count;
        if taken.iter().any(|&(b, e)| base < e && b < end) {
            continue;
        }
        let free = (base..end).all(|p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok());
        if free {
            taken.push((base, end));
            return base;
        }
    }
    panic!("no free range of {count} ports");
}

/// One free port held by no other test of this process.
pub fn free_port() -> u16 {
    free_range(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_ranges_never_overlap_and_are_bindable() {
        let a = free_range(100);
        let b = free_range(100);
        let c = free_port();
        assert!(a + 100 <= b || b + 100 <= a, "{a} {b}");
        assert!(!(a..a + 100).contains(&c) && !(b..b + 100).contains(&c));
        assert!((LOW..HIGH).contains(&c));
        std::net::TcpListener::bind(("127.0.0.1", c)).unwrap();
    }
}
