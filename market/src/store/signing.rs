//! Anti-tampering: every stored row carries an HMAC-SHA256 made by the app
//! tier over what the row says. Only a holder of the secret can write a row
//! that verifies, so a row changed behind the market's back (with `sqlite3`
//! or `psql`, or by another program sharing the database) is caught on read.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Signs and checks rows with one secret.
#[derive(Clone)]
pub struct Signer {
    key: Hmac<Sha256>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer { key: <secret> }")
    }
}

impl Signer {
    /// A signer with `secret` (any length; HMAC hashes long keys).
    pub fn new(secret: &[u8]) -> Self {
        // HMAC takes keys of any length: `new_from_slice` cannot fail.
        let key = Hmac::<Sha256>::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
        Self { key }
    }

    /// The signature (hex) of `fields`, each length-prefixed so that no two
    /// different rows sign the same bytes.
    pub fn sign(&self, fields: &[&str]) -> String {
        hex::encode(self.mac(fields).finalize().into_bytes())
    }

    /// Whether `signature` is what [`sign`](Self::sign) gives for `fields`
    /// (compared in constant time).
    pub fn verifies(&self, fields: &[&str], signature: &str) -> bool {
        let Ok(bytes) = hex::decode(signature) else {
            return false;
        };
        self.mac(fields).verify_slice(&bytes).is_ok()
    }

    fn mac(&self, fields: &[&str]) -> Hmac<Sha256> {
        let mut mac = self.key.clone();
        for field in fields {
            mac.update(&(field.len() as u64).to_be_bytes());
            mac.update(field.as_bytes());
        }
        mac
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_field_or_another_key_does_not_verify() {
        let signer = Signer::new(b"secret");
        let signature = signer.sign(&["cart", "abc", "3", r#"{"items":[]}"#]);
        assert!(signer.verifies(&["cart", "abc", "3", r#"{"items":[]}"#], &signature));
        assert!(!signer.verifies(&["cart", "abc", "4", r#"{"items":[]}"#], &signature));
        assert!(!signer.verifies(&["cart", "abc3", "", r#"{"items":[]}"#], &signature));
        assert!(
            !Signer::new(b"other").verifies(&["cart", "abc", "3", r#"{"items":[]}"#], &signature)
        );
        assert!(!signer.verifies(&["cart", "abc", "3", r#"{"items":[]}"#], "not hex"));
    }
}
