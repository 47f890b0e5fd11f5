//! The rendered reverse proxy as nginx itself reads it: `nginx -t` on the self-signed and the
//! ACME configuration, included in an `http {}` with Debian's http-level TLS settings, as
//! Debian's nginx.conf includes `conf.d/*.conf`. Everything it touches is in a temporary
//! directory (certificates, upstream files, temporary paths, logs); it listens on free ports
//! for the moment of the test. `scripts/install-deps` installs nginx (never started) and
//! openssl for it.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;

use hermes_core::Attrs;
use hermes_render::{ProxySpec, proxy_files};
use serde_json::json;

const CA: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
const HOSTNAMES: [&str; 2] = ["acme.agents.example.com", "big.agents.example.com"];

/// The first of `candidates` that runs (`-v` and `version` answer on every build).
fn tool(candidates: &[&str], arg: &str) -> Option<String> {
    candidates
        .iter()
        .find(|c| {
            Command::new(c)
                .arg(arg)
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .map(|c| (*c).to_owned())
}

/// A port nobody listens on now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The rendered `hermes-agents.conf` for `tls`, pointed at `dir` instead of the host's paths,
/// with port 80 (ACME's) moved to a free one.
fn rendered(tls: &str, dir: &Path) -> String {
    let attrs: Attrs = serde_json::from_value(json!({
        "tls": tls,
        "listen": "public",
        "port": free_port(),
        "allow-from": ["203.0.113.0/24", "2001:db8::/32"],
        "routes": [
            {"agent": "acme", "hostname": HOSTNAMES[0]},
            {"agent": "big-co", "hostname": HOSTNAMES[1]}
        ],
        "acme-email": "ops@example.com"
    }))
    .unwrap();
    let spec = ProxySpec::from_attrs(&attrs).unwrap();
    let files = proxy_files(&spec, spec.acme().then_some(CA)).unwrap();
    let conf = &files.files[0];
    assert_eq!(conf.path, "/etc/nginx/conf.d/hermes-agents.conf");
    let plain = format!("listen 127.0.0.1:{}", free_port());
    conf.content
        .replace("/etc/hermes-infra/proxy/", &format!("{}/", dir.display()))
        .replace("listen 80;", &format!("{plain};"))
        .replace("listen 80 ", &format!("{plain} "))
}

#[test]
fn nginx_accepts_the_rendered_configuration() {
    let nginx = tool(&["nginx", "/usr/sbin/nginx"], "-v")
        .expect("nginx is installed here (scripts/install-deps installs it, kept stopped)");
    let openssl =
        tool(&["openssl"], "version").expect("openssl is installed (scripts/install-deps)");
    for tls in ["self-signed", "acme"] {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("certs")).unwrap();
        std::fs::create_dir_all(d.join("upstreams")).unwrap();
        // One agent deployed (its address known), the other not yet.
        std::fs::write(d.join("upstreams/acme.conf"), "server 10.0.0.10:8642;\n").unwrap();
        for name in HOSTNAMES {
            let made = Command::new(&openssl)
                .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
                .args(["ec_paramgen_curve:P-256", "-nodes", "-days", "1", "-subj"])
                .arg(format!("/CN={name}"))
                .arg("-keyout")
                .arg(d.join(format!("certs/{name}.key")))
                .arg("-out")
                .arg(d.join(format!("certs/{name}.crt")))
                .output()
                .unwrap();
            assert!(made.status.success(), "{made:?}");
        }
        std::fs::write(d.join("hermes-agents.conf"), rendered(tls, d)).unwrap();
        let p = d.display();
        std::fs::write(
            d.join("nginx.conf"),
            format!(
                "pid {p}/nginx.pid;\nevents {{}}\nhttp {{\n\
                 ssl_protocols TLSv1 TLSv1.1 TLSv1.2 TLSv1.3;\n\
                 ssl_prefer_server_ciphers on;\n\
                 access_log {p}/access.log;\n\
                 client_body_temp_path {p}/body;\nproxy_temp_path {p}/proxy;\n\
                 fastcgi_temp_path {p}/fastcgi;\nuwsgi_temp_path {p}/uwsgi;\n\
                 scgi_temp_path {p}/scgi;\n\
                 include {p}/hermes-agents.conf;\n}}\n"
            ),
        )
        .unwrap();
        let tested = Command::new(&nginx)
            .arg("-t")
            .arg("-p")
            .arg(d)
            .arg("-e")
            .arg(d.join("error.log"))
            .arg("-c")
            .arg(d.join("nginx.conf"))
            .output()
            .unwrap();
        assert!(
            tested.status.success(),
            "{tls}: nginx -t refused it:\n{}",
            String::from_utf8_lossy(&tested.stderr)
        );
    }
}
