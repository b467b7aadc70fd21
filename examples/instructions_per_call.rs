//! Instructions the caller's thread spends per call, Beacon's client
//! against a bare hyper-util client, counted by callgrind: repeatable to
//! the instruction whatever else the machine does, so a change to the
//! per-request path can be measured before it lands.
//!
//! ```sh
//! cargo build --release --example instructions_per_call
//! scripts/instructions-per-call.sh
//! ```
//!
//! The program makes `CALLS` sequential calls with one client (`beacon`;
//! `beacon-plain`, with no hedging, round robin; `bare`, hyper-util's
//! pooled client; or `hyper`, one of hyper's HTTP/1 connections used
//! directly, the floor: no pool at all) to an in-process backend on another
//! thread; the script runs it
//! for two call counts under callgrind and divides the difference by the
//! extra calls, so start-up costs cancel out.
//!
//! `H2C=1` speaks HTTP/2 by prior knowledge, `NO_DEADLINE=1` leaves out
//! Beacon's deadline header, and `BACKEND=http://…` calls a running
//! instance instead of the in-process one: run a `beacon-ratings` under
//! callgrind too, to count what a call costs the instance.

use beacon::{
    net::http::{http_client, read_body},
    wire::Address,
    ClientConfig, ResolverConfig, ServiceClient, ServiceView,
};
use bytes::Bytes;
use http_body_util::Full;
use std::{error::Error, time::Duration};

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: instructions_per_call beacon|beacon-plain|bare|hyper CALLS";
    let client = args.next().ok_or(usage)?;
    let calls: usize = args.next().ok_or(usage)?.parse()?;
    // A running instance instead of the example's own (e.g. to count what
    // a `beacon-ratings` spends per call under callgrind).
    let backend = match std::env::var("BACKEND") {
        Ok(url) => url,
        Err(_) => backend()?,
    };
    // HTTP/2 by prior knowledge instead of HTTP/1.1 (not for `hyper`).
    let h2c = std::env::var_os("H2C").is_some();
    // Beacon without its deadline header (`ClientConfig::send_deadline`
    // off), to see what the header costs.
    let send_deadline = std::env::var_os("NO_DEADLINE").is_none();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match client.as_str() {
            // Beacon as configured by default, and without its per-call
            // extras (hedging, latency-aware balancing): what they cost.
            "beacon" | "beacon-plain" => {
                let defaults = ClientConfig {
                    send_deadline,
                    http2_prior_knowledge: h2c,
                    ..ClientConfig::default()
                };
                let config = if client == "beacon" {
                    defaults
                } else {
                    ClientConfig {
                        hedging: None,
                        balancing: beacon::Balancing::RoundRobin,
                        ..defaults
                    }
                };
                let view = ServiceView::fixed(
                    "ratings".parse()?,
                    &[("ratings-1".parse()?, Address::new(&backend)?)],
                    &ResolverConfig::default(),
                );
                let beacon = ServiceClient::for_view(view, config);
                for _ in 0..calls {
                    beacon.get("/ratings/camera").await?;
                }
            }
            "bare" => {
                let bare = match h2c {
                    true => beacon::net::http::http2_client(
                        Duration::from_millis(300),
                        beacon::net::tls::default_config(),
                    ),
                    false => http_client(Duration::from_millis(300)),
                };
                let uri: http::Uri = format!("{backend}/ratings/camera").parse()?;
                for _ in 0..calls {
                    let request = http::Request::get(uri.clone()).body(Full::new(Bytes::new()))?;
                    let response = bare.request(request).await?;
                    read_body(response.into_body(), 1 << 20).await?;
                }
            }
            // One connection, each request sent once the last answer is
            // read: what any pool adds is measured against this.
            "hyper" => {
                let uri: http::Uri = format!("{backend}/ratings/camera").parse()?;
                let tcp =
                    tokio::net::TcpStream::connect(uri.authority().ok_or("authority")?.as_str())
                        .await?;
                let (mut send, conn) = hyper::client::conn::http1::handshake::<_, Full<Bytes>>(
                    hyper_util::rt::TokioIo::new(tcp),
                )
                .await?;
                tokio::spawn(conn);
                for _ in 0..calls {
                    let request = http::Request::get("/ratings/camera")
                        .header(http::header::HOST, "127.0.0.1")
                        .body(Full::new(Bytes::new()))?;
                    let response = send.send_request(request).await?;
                    read_body(response.into_body(), 1 << 20).await?;
                    std::future::poll_fn(|cx| send.poll_ready(cx)).await?;
                }
            }
            other => return Err(format!("unknown client {other}; {usage}").into()),
        }
        Ok::<_, Box<dyn Error>>(())
    })
}

/// A backend on a thread of its own, answering like a ratings instance.
fn backend() -> Result<String, Box<dyn Error>> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let address = format!("http://{}", listener.local_addr()?);
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("backend runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            let app = axum::Router::new().route(
                "/ratings/camera",
                axum::routing::get(|| async { r#"{"thing":"camera","stars":4.5}"# }),
            );
            let _ = axum::serve(listener, app).await;
        });
    });
    Ok(address)
}
