//! Service names and instance ids: any bytes are taken exactly as they are
//! or refused as `invalid_name`; nothing panics.
#![no_main]

use beacon_wire::{ErrorCode, InstanceId, ServiceName};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match (ServiceName::new(text), InstanceId::new(text)) {
        (Ok(service), Ok(id)) => {
            assert_eq!(service.as_str(), text);
            assert_eq!(id.as_str(), text);
        }
        (Err(a), Err(b)) => {
            assert_eq!(a.code, ErrorCode::InvalidName);
            assert_eq!(b.code, ErrorCode::InvalidName);
        }
        _ => panic!("services and instance ids follow one rule: {text:?}"),
    }
});
