//! Content digests: `sha256:<hex>` over bytes or over the canonical JSON of a value.

use serde::Serialize;
use sha2::{Digest as _, Sha256};

/// `sha256:<64 hex>` of `bytes`.
pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Digest of a value's JSON form. Maps must be ordered (`BTreeMap`) for this to be stable;
/// every type hashed by `hermes-infra` is.
pub fn of_json<T: Serialize + ?Sized>(value: &T) -> String {
    // Serializing plain data types to a Vec cannot fail; an error here would be a bug in a
    // hand-written Serialize impl, and hashing the error text keeps the function total.
    let bytes = serde_json::to_vec(value).unwrap_or_else(|e| e.to_string().into_bytes());
    sha256(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_of_known_bytes() {
        assert_eq!(
            sha256(b"abc"),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn json_digest_depends_on_content() {
        assert_ne!(of_json(&[1, 2]), of_json(&[2, 1]));
        assert_eq!(of_json(&[1, 2]), of_json(&[1, 2]));
    }
}
