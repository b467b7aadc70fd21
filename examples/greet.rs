//! The caller side of `examples/greeter.rs`: calls the greeter service a
//! few times and prints which instance answered each call.
//!
//! ```sh
//! cargo run --example greet
//! ```

use beacon::{RegistryClient, Resolver, ResolverConfig, ServedBy, ServiceClient};
use std::error::Error;

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt().with_env_filter("warn").init();
    if let Err(error) = greet().await {
        // What happened, as a sentence: e.g. "no greeter instances known:
        // no registry reachable: http://127.0.0.1:8400: … Connection refused".
        eprintln!("greet: {error}");
        std::process::exit(1);
    }
}

async fn greet() -> Result<(), Box<dyn Error>> {
    let registry_urls =
        std::env::var("BEACON_REGISTRY").unwrap_or_else(|_| "http://127.0.0.1:8400".into());
    let resolver = Resolver::new(
        RegistryClient::from_list(&registry_urls, None)?,
        ResolverConfig::default(),
    );
    let greeter = ServiceClient::builder(&resolver, "greeter").build()?;
    for _ in 0..5 {
        // A registry never reached, or no instance up: the error says which.
        let answer = greeter.get("/hello").await?;
        // Every answer carries the instance that gave it.
        let served = answer
            .extensions()
            .get::<ServedBy>()
            .ok_or("an answer from a ServiceClient carries ServedBy")?;
        print!(
            "{} (after {} attempt(s), {:?}): {}",
            served.id,
            served.attempts,
            served.latency,
            String::from_utf8_lossy(answer.body())
        );
    }
    Ok(())
}
