//! The CIS Docker section 5 checks on `docker inspect` objects: a locked-down agent passes every
//! check that applies, and a careless container is named on each of its faults.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use hermes_audit::{AuditContext, Status, cis_container_checks};
use serde_json::{Value, json};

fn locked_down() -> Value {
    json!({
        "AppArmorProfile": "docker-default",
        "Config": {"Image": "sha256:4b1c0d2f"},
        "State": {"Health": {"Status": "healthy"}},
        "HostConfig": {
            "SecurityOpt": ["no-new-privileges"],
            "CapAdd": null, "CapDrop": ["ALL"], "Privileged": false,
            "NetworkMode": "hermes-acme", "PidMode": "", "IpcMode": "private", "UTSMode": "",
            "UsernsMode": "", "Memory": 1_073_741_824_i64, "NanoCpus": 1_000_000_000_i64,
            "CpuShares": 0, "ReadonlyRootfs": true, "PidsLimit": 256,
            "RestartPolicy": {"Name": "unless-stopped", "MaximumRetryCount": 0},
            "Devices": [], "CgroupParent": ""
        },
        "Mounts": [{"Type": "bind", "Source": "/srv/hermes/acme/data", "Destination": "/opt/data", "Propagation": "rprivate"}],
        "NetworkSettings": {"Ports": {"8642/tcp": null}}
    })
}

fn careless() -> Value {
    json!({
        "AppArmorProfile": "unconfined",
        "Config": {"Image": "hermes-agent:latest"},
        "State": {},
        "HostConfig": {
            "SecurityOpt": ["seccomp=unconfined"],
            "CapAdd": ["SYS_ADMIN"], "CapDrop": null, "Privileged": true,
            "NetworkMode": "host", "PidMode": "host", "IpcMode": "host", "UTSMode": "host",
            "UsernsMode": "host", "Memory": 0, "NanoCpus": 0, "CpuShares": 0,
            "ReadonlyRootfs": false, "PidsLimit": null,
            "RestartPolicy": {"Name": "always", "MaximumRetryCount": 0},
            "Devices": [{"PathOnHost": "/dev/kmsg"}], "CgroupParent": "/custom"
        },
        "Mounts": [
            {"Type": "bind", "Source": "/var/run/docker.sock", "Destination": "/var/run/docker.sock", "Propagation": "rprivate"},
            {"Type": "bind", "Source": "/etc", "Destination": "/host-etc", "Propagation": "rshared"}
        ],
        "NetworkSettings": {"Ports": {"8642/tcp": [{"HostIp": "0.0.0.0", "HostPort": "80"}]}}
    })
}

fn warned(inspect: &Value, context: &AuditContext) -> Vec<&'static str> {
    cis_container_checks(inspect, context)
        .into_iter()
        .filter(|f| f.status == Status::Warn)
        .map(|f| f.id)
        .collect()
}

#[test]
fn a_locked_down_agent_passes_every_check_that_applies() {
    let context = AuditContext {
        apparmor_enabled: true,
        processes: Some(vec!["/usr/bin/tini -- hermes gateway run".to_owned()]),
    };
    let findings = cis_container_checks(&locked_down(), &context);
    assert!(findings.len() >= 25, "{}", findings.len());
    assert!(
        findings.iter().all(|f| f.status == Status::Pass),
        "{findings:#?}"
    );
}

#[test]
fn a_careless_container_is_named_on_each_fault() {
    let context = AuditContext {
        apparmor_enabled: true,
        processes: Some(vec!["/usr/sbin/sshd -D".to_owned()]),
    };
    assert_eq!(
        warned(&careless(), &context),
        [
            "5.2", "5.4", "5.5", "5.6", "5.7", "5.8", "5.10", "5.11", "5.12", "5.13", "5.14",
            "5.15", "5.16", "5.17", "5.18", "5.20", "5.21", "5.22", "5.25", "5.26", "5.27", "5.28",
            "5.29", "5.31", "5.32"
        ]
    );
}

#[test]
fn apparmor_and_processes_are_not_applicable_when_unknown() {
    let findings = cis_container_checks(&locked_down(), &AuditContext::default());
    let na: Vec<&str> = findings
        .iter()
        .filter(|f| matches!(f.status, Status::NotApplicable(_)))
        .map(|f| f.id)
        .collect();
    assert_eq!(na, ["5.2", "5.7"]);
    let json = serde_json::to_value(&findings[0]).unwrap();
    assert_eq!(json["status"], "not-applicable");
}
