//! `beacon-certs DIR`: a throwaway CA, a server certificate for `localhost`
//! and `127.0.0.1`, a client certificate, and a certificate for each of the
//! demo's services naming it (`spiffe://beacon/service/<name>`), as PEM
//! files in DIR — what
//! `make demo TLS=1` runs everything with. Not for production: the CA's key
//! is thrown away, so nothing else can ever be signed by it.

#![forbid(unsafe_code)]

use beacon_kit::tls::ThrowawayPki;
use std::{path::PathBuf, process::ExitCode};

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let (Some(dir), None) = (args.next(), args.next()) else {
        eprintln!("usage: beacon-certs DIR");
        return ExitCode::from(2);
    };
    match ThrowawayPki::generate(&PathBuf::from(dir)) {
        Ok(pki) => {
            println!("CA:     {}", pki.ca.display());
            println!(
                "server: {} {}",
                pki.server_cert.display(),
                pki.server_key.display()
            );
            println!(
                "client: {} {}",
                pki.client_cert.display(),
                pki.client_key.display()
            );
            for service in beacon_kit::tls::DEMO_SERVICES {
                let identity = pki.service_identity(service);
                println!(
                    "{service}: {} {} (spiffe://beacon/service/{service})",
                    identity.cert.display(),
                    identity.key.display()
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("beacon-certs: {e}");
            ExitCode::FAILURE
        }
    }
}
