//! Binding listeners, and finding free ports.

use std::{
    collections::BTreeSet,
    net::SocketAddr,
    sync::{Mutex, PoisonError},
};
use tokio::net::TcpListener;

/// Binds `addr`, or explains which address could not be had and why, in
/// words a person at a terminal can act on.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, String> {
    TcpListener::bind(addr).await.map_err(|err| {
        let hint = if err.kind() == std::io::ErrorKind::AddrInUse {
            " (is another copy already running there?)"
        } else {
            ""
        };
        format!("cannot listen on {addr}: {err}{hint}")
    })
}

/// A loopback port free right now, for a process that must be told its
/// port up front (etcd, a restart on the same port). Prefer binding
/// `127.0.0.1:0` where the listener is ours.
///
/// Never the same port twice in one process: the listener that found a
/// port is closed before the next call, so the kernel may offer that port
/// again, and two etcd members told the same port would leave a cluster
/// one member short.
pub fn free_port() -> u16 {
    static GIVEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    let mut port = 0;
    // Bounded: with tens of thousands of ephemeral ports, a few tries find
    // one not yet given; past the bound a repeat beats looping forever.
    for _ in 0..64 {
        port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or(0);
        let mut given = GIVEN.lock().unwrap_or_else(PoisonError::into_inner);
        if port == 0 || given.insert(port) {
            break;
        }
    }
    port
}

#[cfg(test)]
mod tests {
    use super::free_port;
    use std::collections::HashSet;

    #[test]
    fn free_ports_are_never_handed_out_twice() {
        let ports: Vec<u16> = (0..500).map(|_| free_port()).collect();
        assert!(ports.iter().all(|&p| p != 0), "{ports:?}");
        let distinct: HashSet<u16> = ports.iter().copied().collect();
        assert_eq!(distinct.len(), ports.len());
    }
}
