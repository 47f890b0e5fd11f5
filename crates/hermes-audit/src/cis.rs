//! CIS Docker Benchmark section 5 on one `docker inspect` object.

use serde::Serialize;
use serde_json::Value;

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "status", content = "reason")]
pub enum Status {
    /// Passed.
    Pass,
    /// Failed: docker-bench would print WARN.
    Warn,
    /// Does not apply here (the reason says why).
    NotApplicable(String),
}

/// One check's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// docker-bench's id, such as `5.13`.
    pub id: &'static str,
    /// What is checked.
    pub title: &'static str,
    /// Pass, warn, or not applicable.
    #[serde(flatten)]
    pub status: Status,
    /// What was seen (the offending value on a warning).
    pub detail: String,
}

/// What the checks need to know besides the container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditContext {
    /// Whether the kernel the container runs on has AppArmor enabled (5.2 applies only then).
    pub apparmor_enabled: bool,
    /// The container's process command lines, when the caller listed them (5.7).
    pub processes: Option<Vec<String>>,
}

/// Capabilities Docker grants by default; adding one of these back is not a widening.
const DEFAULT_CAPS: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "FSETID",
    "FOWNER",
    "MKNOD",
    "NET_RAW",
    "SETGID",
    "SETUID",
    "SETFCAP",
    "SETPCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "KILL",
    "AUDIT_WRITE",
];

/// Host directories no container may mount (5.6).
const SENSITIVE_DIRS: &[&str] = &[
    "/", "/boot", "/dev", "/etc", "/lib", "/proc", "/sys", "/usr",
];

fn at<'a>(v: &'a Value, path: &[&str]) -> &'a Value {
    path.iter().fold(v, |v, k| v.get(k).unwrap_or(&Value::Null))
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn finding(id: &'static str, title: &'static str, ok: bool, detail: String) -> Finding {
    Finding {
        id,
        title,
        status: if ok { Status::Pass } else { Status::Warn },
        detail,
    }
}

fn not_host(id: &'static str, title: &'static str, inspect: &Value, field: &str) -> Finding {
    let mode = text(at(inspect, &["HostConfig", field]));
    finding(id, title, mode != "host", format!("{field}={mode:?}"))
}

/// The section 5 checks on `inspect` (one element of `docker inspect`'s array), in id order.
pub fn cis_container_checks(inspect: &Value, context: &AuditContext) -> Vec<Finding> {
    let host = at(inspect, &["HostConfig"]);
    let security_opt = strings(&host["SecurityOpt"]);
    let mounts = inspect["Mounts"].as_array().cloned().unwrap_or_default();
    let mut out = Vec::new();

    let apparmor = text(&inspect["AppArmorProfile"]);
    out.push(if context.apparmor_enabled {
        finding(
            "5.2",
            "an AppArmor profile is applied",
            !apparmor.is_empty() && apparmor != "unconfined",
            format!("AppArmorProfile={apparmor:?}"),
        )
    } else {
        Finding {
            id: "5.2",
            title: "an AppArmor profile is applied",
            status: Status::NotApplicable("the kernel has AppArmor disabled".to_owned()),
            detail: format!("AppArmorProfile={apparmor:?}"),
        }
    });
    out.push(finding(
        "5.3",
        "security options are set",
        !security_opt.is_empty(),
        format!("SecurityOpt={security_opt:?}"),
    ));
    let added: Vec<String> = strings(&host["CapAdd"])
        .into_iter()
        .map(|c| c.trim_start_matches("CAP_").to_ascii_uppercase())
        .collect();
    let widened: Vec<&String> = added
        .iter()
        .filter(|c| !DEFAULT_CAPS.contains(&c.as_str()))
        .collect();
    out.push(finding(
        "5.4",
        "no capability beyond Docker's default set is added",
        widened.is_empty(),
        format!("CapAdd={added:?}, CapDrop={:?}", strings(&host["CapDrop"])),
    ));
    out.push(finding(
        "5.5",
        "not privileged",
        !host["Privileged"].as_bool().unwrap_or(false),
        format!("Privileged={}", host["Privileged"]),
    ));
    let sensitive: Vec<String> = mounts
        .iter()
        .map(|m| text(&m["Source"]).to_owned())
        .filter(|s| {
            SENSITIVE_DIRS
                .iter()
                .any(|d| s == d || (*d != "/" && s.starts_with(&format!("{d}/"))))
        })
        .collect();
    out.push(finding(
        "5.6",
        "no sensitive host directory is mounted",
        sensitive.is_empty(),
        format!("sensitive mounts: {sensitive:?}"),
    ));
    out.push(match &context.processes {
        Some(processes) => {
            let sshd: Vec<&String> = processes.iter().filter(|p| p.contains("sshd")).collect();
            finding(
                "5.7",
                "no sshd runs in the container",
                sshd.is_empty(),
                format!("{} processes, sshd: {sshd:?}", processes.len()),
            )
        }
        None => Finding {
            id: "5.7",
            title: "no sshd runs in the container",
            status: Status::NotApplicable("no process list was taken".to_owned()),
            detail: String::new(),
        },
    });
    let bindings = port_bindings(inspect);
    let privileged_ports: Vec<&(String, u16)> =
        bindings.iter().filter(|(_, port)| *port < 1024).collect();
    out.push(finding(
        "5.8",
        "no privileged host port is mapped",
        privileged_ports.is_empty(),
        format!("published: {bindings:?}"),
    ));
    out.push(not_host(
        "5.10",
        "the host's network namespace is not shared",
        inspect,
        "NetworkMode",
    ));
    out.push(finding(
        "5.11",
        "memory is limited",
        host["Memory"].as_i64().unwrap_or(0) > 0,
        format!("Memory={}", host["Memory"]),
    ));
    out.push(finding(
        "5.12",
        "CPU is limited",
        host["NanoCpus"].as_i64().unwrap_or(0) > 0
            || !matches!(host["CpuShares"].as_i64().unwrap_or(0), 0 | 1024),
        format!(
            "NanoCpus={}, CpuShares={}",
            host["NanoCpus"], host["CpuShares"]
        ),
    ));
    out.push(finding(
        "5.13",
        "the root filesystem is read-only",
        host["ReadonlyRootfs"].as_bool().unwrap_or(false),
        format!("ReadonlyRootfs={}", host["ReadonlyRootfs"]),
    ));
    let wildcard: Vec<&(String, u16)> = bindings
        .iter()
        .filter(|(ip, _)| ip.is_empty() || ip == "0.0.0.0" || ip == "::")
        .collect();
    out.push(finding(
        "5.14",
        "published ports are bound to one host address",
        wildcard.is_empty(),
        format!("published: {bindings:?}"),
    ));
    let policy = text(at(host, &["RestartPolicy", "Name"]));
    let retries = at(host, &["RestartPolicy", "MaximumRetryCount"])
        .as_i64()
        .unwrap_or(0);
    out.push(finding(
        "5.15",
        "the restart policy is bounded",
        policy != "always" && retries <= 5,
        format!("RestartPolicy={policy:?}, MaximumRetryCount={retries}"),
    ));
    out.push(not_host(
        "5.16",
        "the host's process namespace is not shared",
        inspect,
        "PidMode",
    ));
    out.push(not_host(
        "5.17",
        "the host's IPC namespace is not shared",
        inspect,
        "IpcMode",
    ));
    let devices = host["Devices"].as_array().map_or(0, Vec::len);
    out.push(finding(
        "5.18",
        "no host device is exposed",
        devices == 0,
        format!("{devices} devices"),
    ));
    let shared: Vec<String> = mounts
        .iter()
        .filter(|m| matches!(text(&m["Propagation"]), "shared" | "rshared"))
        .map(|m| text(&m["Destination"]).to_owned())
        .collect();
    out.push(finding(
        "5.20",
        "no mount propagation is shared",
        shared.is_empty(),
        format!("shared: {shared:?}"),
    ));
    out.push(not_host(
        "5.21",
        "the host's UTS namespace is not shared",
        inspect,
        "UTSMode",
    ));
    out.push(finding(
        "5.22",
        "seccomp is not disabled",
        !security_opt
            .iter()
            .any(|o| o.replace(':', "=") == "seccomp=unconfined"),
        format!("SecurityOpt={security_opt:?}"),
    ));
    let parent = text(&host["CgroupParent"]);
    out.push(finding(
        "5.25",
        "the default cgroup parent is used",
        parent.is_empty(),
        format!("CgroupParent={parent:?}"),
    ));
    out.push(finding(
        "5.26",
        "no new privileges can be gained",
        security_opt.iter().any(|o| {
            matches!(
                o.replace(':', "=").as_str(),
                "no-new-privileges" | "no-new-privileges=true"
            )
        }),
        format!("SecurityOpt={security_opt:?}"),
    ));
    let health = at(inspect, &["State", "Health", "Status"]);
    out.push(finding(
        "5.27",
        "a health check runs",
        !health.is_null(),
        format!("State.Health.Status={health}"),
    ));
    let image = text(at(inspect, &["Config", "Image"]));
    out.push(finding(
        "5.28",
        "the image is pinned by digest or id",
        image.contains("@sha256:") || image.starts_with("sha256:"),
        format!("Config.Image={image:?}"),
    ));
    out.push(finding(
        "5.29",
        "the number of processes is limited",
        host["PidsLimit"].as_i64().unwrap_or(0) > 0,
        format!("PidsLimit={}", host["PidsLimit"]),
    ));
    let network = text(&host["NetworkMode"]);
    out.push(finding(
        "5.30",
        "not on the default bridge",
        !matches!(network, "default" | "bridge" | ""),
        format!("NetworkMode={network:?}"),
    ));
    out.push(not_host(
        "5.31",
        "the host's user namespace is not shared",
        inspect,
        "UsernsMode",
    ));
    let socket: Vec<String> = mounts
        .iter()
        .map(|m| text(&m["Source"]).to_owned())
        .filter(|s| s.ends_with("docker.sock"))
        .collect();
    out.push(finding(
        "5.32",
        "the Docker socket is not mounted",
        socket.is_empty(),
        format!("socket mounts: {socket:?}"),
    ));
    out
}

/// Published ports as (host address, host port).
fn port_bindings(inspect: &Value) -> Vec<(String, u16)> {
    let mut out = Vec::new();
    if let Some(ports) = at(inspect, &["NetworkSettings", "Ports"]).as_object() {
        for bindings in ports.values() {
            for b in bindings.as_array().into_iter().flatten() {
                let port = text(&b["HostPort"]).parse().unwrap_or(0);
                out.push((text(&b["HostIp"]).to_owned(), port));
            }
        }
    }
    out
}
