//! Random ids and secrets, hex encoded, from the operating system.

/// A fresh random secret, for a server started without one.
pub fn secret() -> String {
    hex(24)
}

/// An id no other shares: a credential's user part (so that `turn.max_allocations_per_user`
/// counts per credential handed out, not per second of expiry), a process's instance in a
/// cluster.
pub fn id() -> String {
    hex(8)
}

fn hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    getrandom::fill(&mut b).expect("the OS provides randomness");
    b.iter().map(|b| format!("{b:02x}")).collect()
}
