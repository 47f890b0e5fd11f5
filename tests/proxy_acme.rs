//! The reverse proxy with certificates from an ACME directory (`proxy.tls = "acme"`), through
//! the real binary: Pebble, Let's Encrypt's test server, stands for the CA on the host's
//! network (its own CA given as `acme-ca`, the host's name resolving to the host for it). The
//! apply opens port 80 for HTTP-01, has certbot fetch a certificate through nginx, and serves
//! it: a chat completion verified against Pebble's root alone answers; plain HTTP is redirected
//! to HTTPS; a second apply changes nothing; certbot's renewals (its systemd service, which
//! trusts the directory's CA through hermes-infra's drop-in) get a new certificate that nginx
//! then serves.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod agents;
mod hardening;

use agents::{Proxy, addresses, api_key};
use hardening::Stack;
use hermes_testbed::Testbed;

const ANSWER: &str = "Hello from the fake LLM, over a certificate from ACME.";
const HOSTNAME: &str = "shop.hermes.test";

fn body() -> String {
    format!(
        r#"environments = ["dev"]
[provider.local]
host-kind = "container"
[hosts.h]
[proxy]
tls = "acme"
acme-email = "ops@hermes.test"
acme-directory = "https://{directory}:14000/dir"
acme-ca = "file:acme-ca.pem"
[agents.shop]
host = "h"
hostname = "{HOSTNAME}"
model = {{ provider = "custom", model = "fake-gpt", base-url = "http://fake-llm.hermes.test:8080/v1" }}
limits = {{ memory = "1g", cpus = 1.0, pids = 256 }}
"#,
        directory = hermes_testbed::acme::ALIAS
    )
}

/// The serial number of the certificate nginx serves for [`HOSTNAME`], read on the host.
fn served_serial(stack: &Stack) -> String {
    stack
        .on(
            "h",
            &format!(
                "echo | openssl s_client -connect 127.0.0.1:443 -servername {HOSTNAME} 2>/dev/null \
                 | openssl x509 -noout -serial -issuer"
            ),
        )
        .ok()
        .stdout
        .trim()
        .to_owned()
}

#[test]
fn certificates_come_from_the_acme_directory_and_renew() {
    let stack = Stack::new("proxy-acme", &body());
    stack.apply(&["--target", "docker-engine"]).ok();

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let testbed = Testbed::new();
    let address: std::net::IpAddr = stack.address("h").parse().unwrap();
    let (_llm, acme) = runtime.block_on(async {
        let network = agents::network_of(&testbed, &stack).await;
        let llm = agents::fake_llm(&testbed, &network, ANSWER).await;
        let acme = testbed.acme(&network).await.unwrap();
        acme.add_host(HOSTNAME, address).await.unwrap();
        (llm, acme)
    });
    let listener_ca = runtime.block_on(acme.listener_ca()).unwrap();
    stack.dir.write("acme-ca.pem", &listener_ca).unwrap();

    let applied = stack.apply(&[]).ok().json();
    assert_eq!(
        addresses(&applied, "done"),
        ["agent.shop", "reverse-proxy.h"],
        "{applied}"
    );
    let issuer = runtime.block_on(acme.issuer()).unwrap();
    let proxy = Proxy::trusting(&stack, "h", &issuer);
    let key = api_key(&stack, "h", "shop");
    let (code, status, answer) = proxy.chat(HOSTNAME, Some(&key));
    assert_eq!((code, status.as_str()), (0, "200"), "{answer}");
    assert!(answer.contains(ANSWER), "{answer}");
    assert_eq!(proxy.chat(HOSTNAME, None).1, "401");
    let first = served_serial(&stack);
    assert!(first.contains("issuer=CN = Pebble Intermediate"), "{first}");

    // Port 80 answers the challenges and sends everything else to HTTPS.
    let redirect = std::process::Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "--max-time",
            "10",
            "-w",
            "%{http_code} %{redirect_url}",
            "--resolve",
            &format!("{HOSTNAME}:80:{address}"),
            &format!("http://{HOSTNAME}/v1/models"),
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&redirect.stdout),
        format!("308 https://{HOSTNAME}/v1/models")
    );

    let second = stack.apply(&[]).ok().json();
    assert!(addresses(&second, "done").is_empty(), "{second}");

    // A renewal the way certbot's timer runs it (its service, with hermes-infra's drop-in),
    // forced and without the random wait of up to 8 minutes certbot adds off a terminal.
    let renewal = stack
        .on(
            "h",
            &format!(
                "sudo grep -c '^server = https://{}:14000/dir' /etc/letsencrypt/renewal/{HOSTNAME}.conf; \
                 sudo systemctl show certbot.service -p Environment",
                hermes_testbed::acme::ALIAS
            ),
        )
        .ok();
    assert!(
        renewal
            .stdout
            .contains("1\nEnvironment=REQUESTS_CA_BUNDLE=/etc/hermes-infra/proxy/acme-ca.pem"),
        "{renewal:?}"
    );
    stack
        .on(
            "h",
            "sudo sh -c 'mkdir -p /run/systemd/system/certbot.service.d && \
             printf \"[Service]\\nExecStart=\\nExecStart=/usr/bin/certbot -q renew --force-renewal --no-random-sleep-on-renew\\n\" \
             >/run/systemd/system/certbot.service.d/force.conf && systemctl daemon-reload' && \
             sudo systemctl start certbot.service; \
             sudo rm -rf /run/systemd/system/certbot.service.d; sudo systemctl daemon-reload",
        )
        .ok();
    let renewed = served_serial(&stack);
    assert_ne!(renewed, first, "nginx serves the renewed certificate");
    assert!(
        renewed.contains("issuer=CN = Pebble Intermediate"),
        "{renewed}"
    );
    assert_eq!(proxy.chat(HOSTNAME, Some(&key)).1, "200");
    drop(acme);
}
