//! The checked values accept what they should and explain what they refuse.

use std::fmt;

use super::*;

fn ok<T: TryFrom<String, Error = String>>(s: &str) -> T {
    T::try_from(s.to_owned()).unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn err<T: TryFrom<String, Error = String> + fmt::Debug>(s: &str) -> String {
    T::try_from(s.to_owned()).unwrap_err()
}

#[test]
fn sizes() {
    assert_eq!(ok::<Size>("2g").bytes(), 2 << 30);
    assert_eq!(ok::<Size>("512m").bytes(), 512 << 20);
    assert!(err::<Size>("2 gigs").contains("write `2g`"));
    assert!(err::<Size>("512 MB").contains("write `512m`"));
    assert!(err::<Size>("2GiB").contains("write `2g`"));
    assert!(err::<Size>("lots").contains("such as `512m`"));
    assert!(err::<Size>("2").contains("unit"));
    assert!(err::<Size>("99999999999999999g").contains("too large"));
}

#[test]
fn hostnames() {
    ok::<Hostname>("api.openai.com");
    ok::<Hostname>("*.example.com");
    ok::<Hostname>("acme.hermes.localhost");
    assert!(err::<Hostname>("https://api.openai.com/v1").contains("write `api.openai.com`"));
    assert!(err::<Hostname>("api.openai.com:443").contains("write `api.openai.com`"));
    assert!(err::<Hostname>("10.0.0.1").contains("IP address"));
    assert!(err::<Hostname>("bad_host.example.com").contains("`bad_host`"));
    assert!(err::<Hostname>("intranet").contains("fully qualified"));
}

#[test]
fn cidrs() {
    ok::<Cidr>("203.0.113.7/32");
    ok::<Cidr>("::/0");
    assert!(err::<Cidr>("203.0.113.7").contains("`203.0.113.7/32`"));
    assert!(err::<Cidr>("300.1.1.1/32").contains("not a CIDR"));
    assert!(err::<Cidr>("10.0.0.0/33").contains("prefix length 33"));
    assert!(err::<Cidr>("10.0.0.0/x").contains("`10.0.0.0/32`"));
}

#[test]
fn durations_and_times() {
    assert_eq!(ok::<DurationText>("10m").seconds(), 600);
    assert_eq!(ok::<DurationText>("1w").seconds(), 604_800);
    assert!(err::<DurationText>("10 minutes").contains("duration"));
    ok::<TimeOfDay>("03:30");
    assert!(err::<TimeOfDay>("25:00").contains("HH:MM"));
}

#[test]
fn urls_and_images() {
    assert_eq!(
        ok::<Url>("https://api.openai.com/v1").host(),
        "api.openai.com"
    );
    assert_eq!(ok::<Url>("http://fake-llm:8080/v1").host(), "fake-llm");
    assert!(err::<Url>("api.openai.com/v1").contains("https://"));
    let e = err::<Url>("https://user:pw@example.com/v1");
    assert!(e.contains("credentials") && e.contains("`https://example.com/v1`"));
    assert!(!e.contains("pw"), "{e}");
    assert!(
        ok::<ImageRef>(&format!(
            "docker.io/nousresearch/hermes-agent@sha256:{}",
            "a".repeat(64)
        ))
        .is_pinned()
    );
    assert!(err::<ImageRef>("nousresearch/hermes-agent@sha256:abc").contains("digest"));
}

#[test]
fn names_users_and_keys() {
    ok::<Name>("acme-1");
    assert!(err::<Name>("Acme").contains("lowercase"));
    assert!(err::<Name>("Acme_Corp").contains("write `acme-corp`"));
    assert!(!err::<Name>("---").contains("write"));
    assert!(err::<UnixUser>("root").contains("disabled"));
    assert!(err::<SshPublicKey>("-----BEGIN OPENSSH PRIVATE KEY----- abc").contains("private key"));
    ok::<SshPublicKey>(&format!("ssh-ed25519 {} ops@laptop", "A".repeat(68)));
    assert!(err::<EnvName>("lower").contains("UPPER_CASE"));
    assert!(err::<EnvName>("my-var").contains("write `MY_VAR`"));
}
