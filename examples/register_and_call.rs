//! Register a service and call it through Beacon, end to end.
//!
//! Start a registry first (`make registry`), then:
//!
//! ```sh
//! cargo run --example register_and_call
//! ```
//!
//! The example serves a tiny "hello" service on a free port, keeps it
//! registered with a [`Lease`], calls it three times through a
//! [`ServiceClient`], prints which instance answered, and deregisters.

use beacon::{
    wire::{Address, Registration},
    ClientConfig, Lease, RegistryClient, Resolver, ResolverConfig, ServedBy, ServiceClient,
};
use std::error::Error;

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let registry_urls =
        std::env::var("BEACON_REGISTRY").unwrap_or_else(|_| "http://127.0.0.1:8400".into());
    let registry = RegistryClient::from_list(&registry_urls, None)?;

    // The service side: serve something, and register it.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = Address::new(&format!("http://{}", listener.local_addr()?))?;
    let app = axum::Router::new().route("/hello", axum::routing::get(|| async { "hello\n" }));
    tokio::spawn(async move { axum::serve(listener, app).await });
    let lease = Lease::start(
        registry.clone(),
        "hello".parse()?,
        "hello-1".parse()?,
        Registration::new(address),
    );
    println!("registering hello-1 with {registry_urls} ...");
    lease.registered().await;

    // The caller side: resolve and call.
    let resolver = Resolver::new(registry, ResolverConfig::default());
    let hello = ServiceClient::new(&resolver, &"hello".parse()?, ClientConfig::default());
    for _ in 0..3 {
        let response = hello.get("/hello").await?;
        let served = response
            .extensions()
            .get::<ServedBy>()
            .map(|s| s.id.to_string());
        println!(
            "{} from {}",
            String::from_utf8_lossy(response.body()).trim(),
            served.unwrap_or_default()
        );
    }
    println!("{}", serde_json::to_string_pretty(&hello.snapshot())?);

    lease.shutdown().await?;
    println!("deregistered");
    Ok(())
}
