//! Instance addresses: any text is taken (and then parses back to itself)
//! or refused as `invalid_address`; nothing panics.
#![no_main]

use beacon_wire::{Address, ErrorCode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Address::new(text) {
        Ok(address) => {
            let again = Address::new(&address.to_string()).expect("a normalized address parses");
            assert_eq!(again, address);
        }
        Err(error) => assert_eq!(error.code, ErrorCode::InvalidAddress),
    }
});
