//! Hermes Agent versions as a stack pins them.

/// Whether `version` is a plain release number such as `0.19.0`: dot-separated decimal numbers,
/// nothing else (no pre-release, no range, no shell word), so it can go into an install step.
pub fn is_plain_release(version: &str) -> bool {
    !version.is_empty()
        && version
            .split('.')
            .all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_releases_pass() {
        for good in ["0.19.0", "1", "2026.7.20"] {
            assert!(is_plain_release(good), "{good}");
        }
        for bad in [
            "",
            "0..1",
            "0.19.0rc1",
            ">=0.19",
            "0.19.0; rm -rf /",
            "latest",
            "v0.19.0",
        ] {
            assert!(!is_plain_release(bad), "{bad}");
        }
    }
}
