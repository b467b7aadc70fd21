//! Binding listeners, and finding free ports.

use std::net::SocketAddr;
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
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}
