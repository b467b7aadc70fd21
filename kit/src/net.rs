//! Binding listeners.

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
