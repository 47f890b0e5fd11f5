//! The files a host gets, snapshotted: a container host (kernel-level settings left out and
//! reported) and a host with its own kernel, with a proxy, an extra inbound rule and the stack's
//! own sysctl.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::fmt::Write as _;

use hermes_core::Attrs;
use hermes_render::{HardeningSpec, HostFacts, Rendered, docker_files, hardening_files};
use serde_json::json;

fn spec() -> HardeningSpec {
    let attrs: Attrs = serde_json::from_value(json!({
        "admin-user": "ops",
        "ssh-port": 22,
        "ssh-allow-from": ["203.0.113.7/32", "2001:db8::/48"],
        "authorized-keys": ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHq1sM5fJ0cUy9c3Gm0mJ8nXH8v7nq4oJbU0wq8m1Z3P ops@laptop"],
        "fail2ban": {"enabled": true, "max-retry": 3, "find-time": "10m", "ban-time": "1h", "recidive": true, "ignore": ["198.51.100.0/24"]},
        "unattended-upgrades": {"enabled": true, "reboot": true, "reboot-window": "03:30"},
        "sysctl": {"net.ipv4.tcp_keepalive_time": 600, "vm.swappiness": 10},
        "inbound": [{"port": "8000-8010", "protocol": "udp", "from": ["192.0.2.0/24"]}],
        "proxy": {"port": 443, "from": [], "listen": "public"},
        "templates": "sha256:ignored"
    }))
    .unwrap();
    HardeningSpec::from_attrs(&attrs).unwrap()
}

fn text(rendered: &Rendered) -> String {
    let mut out = String::new();
    for file in &rendered.files {
        let _ = writeln!(
            out,
            "==> {} (mode {:o}, reload {})\n{}",
            file.path,
            file.mode,
            file.reload.as_str(),
            file.content
        );
    }
    for what in &rendered.not_applicable {
        let _ = writeln!(out, "==> not applicable: {what}");
    }
    out
}

#[test]
fn a_container_host_gets_network_settings_only_and_says_so() {
    let facts = HostFacts {
        kernel_own: false,
        admin_source: Some("172.18.0.1".parse().unwrap()),
    };
    let rendered = hardening_files(
        &spec(),
        &facts,
        &["ssh-ed25519 AAAAtool hermes-infra".to_owned()],
    )
    .unwrap();
    assert!(rendered.not_applicable[0].contains("vm.swappiness"));
    insta::assert_snapshot!("hardening-container", text(&rendered));
}

#[test]
fn a_host_with_its_own_kernel_gets_every_setting() {
    let facts = HostFacts {
        kernel_own: true,
        admin_source: None,
    };
    let rendered = hardening_files(&spec(), &facts, &[]).unwrap();
    assert!(rendered.not_applicable.is_empty());
    insta::assert_snapshot!("hardening-own-kernel", text(&rendered));
    insta::assert_snapshot!("docker", text(&docker_files(&facts).unwrap()));
}

#[test]
fn a_local_stack_without_ssh_sources_lets_in_and_never_bans_this_machine() {
    let mut attrs: Attrs = serde_json::from_value(json!({
        "admin-user": "ops", "ssh-port": 22, "ssh-allow-from": [], "authorized-keys": [],
        "fail2ban": {"enabled": true, "max-retry": 3, "find-time": "10m", "ban-time": "1h", "recidive": true},
        "unattended-upgrades": {"enabled": true, "reboot": false, "reboot-window": "03:30"},
    }))
    .unwrap();
    attrs.insert("proxy".to_owned(), serde_json::Value::Null);
    let facts = HostFacts {
        kernel_own: false,
        admin_source: Some("172.18.0.1".parse().unwrap()),
    };
    let rendered =
        hardening_files(&HardeningSpec::from_attrs(&attrs).unwrap(), &facts, &[]).unwrap();
    let file = |suffix: &str| {
        rendered
            .files
            .iter()
            .find(|f| f.path.ends_with(suffix))
            .unwrap()
            .content
            .clone()
    };
    assert!(file("nftables.conf").contains("172.18.0.1"));
    assert!(file("00-hermes.local").contains("172.18.0.1"));
}

#[test]
fn a_bad_source_is_an_error_naming_it() {
    let mut attrs: Attrs = serde_json::from_value(json!({
        "admin-user": "ops", "ssh-port": 22, "ssh-allow-from": ["not-a-network"],
        "fail2ban": {"enabled": true, "max-retry": 3, "find-time": "10m", "ban-time": "1h", "recidive": true},
        "unattended-upgrades": {"enabled": true, "reboot": false, "reboot-window": "03:30"},
    }))
    .unwrap();
    attrs.insert("proxy".to_owned(), serde_json::Value::Null);
    let error = hardening_files(
        &HardeningSpec::from_attrs(&attrs).unwrap(),
        &HostFacts::default(),
        &[],
    )
    .unwrap_err();
    assert!(error.to_string().contains("`not-a-network`"), "{error}");
}

#[test]
fn a_proxy_with_acme_opens_port_80_to_anyone_for_its_challenges() {
    let firewall = |proxy: serde_json::Value| {
        let mut attrs: Attrs = serde_json::from_value(json!({
            "admin-user": "ops", "ssh-port": 22, "ssh-allow-from": [], "authorized-keys": [],
            "fail2ban": {"enabled": false, "max-retry": 3, "find-time": "10m", "ban-time": "1h", "recidive": false},
            "unattended-upgrades": {"enabled": true, "reboot": false, "reboot-window": "03:30"},
        }))
        .unwrap();
        attrs.insert("proxy".to_owned(), proxy);
        let facts = HostFacts {
            kernel_own: true,
            admin_source: None,
        };
        let rendered =
            hardening_files(&HardeningSpec::from_attrs(&attrs).unwrap(), &facts, &[]).unwrap();
        rendered
            .files
            .into_iter()
            .find(|f| f.path.ends_with("nftables.conf"))
            .unwrap()
            .content
    };
    let from = json!(["203.0.113.0/24"]);
    let acme = firewall(json!({"port": 443, "from": from, "listen": "public", "acme": true}));
    assert!(
        acme.contains("tcp dport 443 ip saddr { 203.0.113.0/24 } accept"),
        "{acme}"
    );
    assert!(acme.contains("\t\ttcp dport 80 accept\n"), "{acme}");
    let plain = firewall(json!({"port": 443, "from": from, "listen": "public"}));
    assert!(!plain.contains("dport 80 "), "{plain}");
}
