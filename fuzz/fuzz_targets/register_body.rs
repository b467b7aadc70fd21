//! The registration body: any bytes are refused as JSON, or validated into
//! a registration (TTL in range, address valid, metadata within its cap)
//! or refused with a code; nothing panics.
#![no_main]

use beacon_wire::{ErrorCode, RegisterRequest, MAX_METADATA_BYTES, MAX_TTL, MIN_TTL};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(request) = serde_json::from_slice::<RegisterRequest>(data) else {
        return;
    };
    match request.validate() {
        Ok(registration) => {
            assert!((MIN_TTL..=MAX_TTL).contains(&registration.ttl));
            let metadata: usize = registration.metadata.iter().map(|(k, v)| k.len() + v.len()).sum();
            assert!(metadata <= MAX_METADATA_BYTES);
        }
        Err(error) => assert!(matches!(
            error.code,
            ErrorCode::InvalidAddress | ErrorCode::InvalidTtl | ErrorCode::InvalidRegistration
        )),
    }
});
