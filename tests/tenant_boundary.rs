//! The boundary between customers, attacked from inside one of them, on a real host with two
//! real agents through the real binary: acme is hostile, globex is its victim.
//! - Each agent runs as a UID of its own; its data is 0700 and its own; a file acme writes is
//!   unreadable to globex's UID.
//! - From inside acme nothing on the host answers (SSH, the reverse proxy, the Docker API,
//!   gateways), nor globex; through acme's egress proxy only the model's own endpoint does.
//! - acme plants links to globex's `.env` and to `/etc/shadow`, and a FIFO, in its own data,
//!   and every verb that touches acme (apply with a change, rotate, rollback, a restart) refuses
//!   them, names the path and the fix, and gives acme nothing: globex is untouched and answers
//!   its own key only.
//! - Data from before per-agent UIDs (the image's 10000) is migrated on the next apply, intact.
//! - The host's audit log names the actor; its journal holds no key, secret or `exec` words.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod agents;
mod hardening;

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use agents::{Proxy, addresses};
use hardening::{APPLY_TIMEOUT, SHORT_TIMEOUT, Stack};
use hermes_testbed::{DerivedImage, Testbed};
use serde_json::Value;

const BUILD_TIMEOUT: Duration = Duration::from_mins(20);
const ANSWER: &str = "Hello from the fake LLM, to a tenant.";
const ACME: &str = "acme.hermes.localhost";
const GLOBEX: &str = "globex.hermes.localhost";
/// globex's own secret: it must never reach acme.
const GLOBEX_CANARY: &str = "canary-globex-3d9a61f0";

/// The stack: acme (with `acme_env`) and globex on host `h`; `image` is the `[image]` body.
fn body(image: &str, acme_env: &str) -> String {
    let model = r#"{ provider = "custom", model = "fake-gpt", base-url = "http://fake-llm.hermes.test:8080/v1" }"#;
    let image = if image.is_empty() {
        String::new()
    } else {
        format!("[image]\n{image}\n")
    };
    format!(
        r#"environments = ["dev"]
[provider.local]
host-kind = "container"
[hosts.h]
[proxy]
tls = "self-signed"
{image}[agents.acme]
host = "h"
hostname = "{ACME}"
model = {model}
env = {{ {acme_env} }}
[agents.globex]
host = "h"
hostname = "{GLOBEX}"
model = {model}
secrets = {{ GLOBEX_TOKEN = "file:globex.txt" }}
"#
    )
}

fn binary(args: &[&str], timeout: Duration) -> Value {
    let out = hermes_testbed::run_binary(
        Path::new(env!("CARGO_BIN_EXE_hermes-infra")),
        args,
        &[],
        timeout,
    )
    .unwrap();
    assert!(out.status.success(), "{args:?}: {out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `script` as root on the host (through `sudo sh -c`), its standard output trimmed.
fn root(stack: &Stack, script: &str) -> String {
    let word = format!("'{}'", script.replace('\'', r"'\''"));
    stack
        .on("h", &format!("sudo sh -c {word}"))
        .ok()
        .stdout
        .trim()
        .to_owned()
}

/// `hermes-infra exec STACK acme -- sh -c SCRIPT`: acme's own shell, as its own user.
fn in_acme(stack: &Stack, script: &str) -> String {
    stack
        .run("exec", &["acme", "--", "sh", "-c", script], SHORT_TIMEOUT)
        .ok()
        .stdout
        .trim()
        .to_owned()
}

/// What the victim has that the attacker must never get: checksums of globex's files, and
/// whether anything in acme's reach (its home, the trial runs' homes) holds globex's key,
/// globex's secret or a line of `/etc/shadow` (the patterns are made on the host, in a file:
/// never in a command line).
fn loot_check(stack: &Stack) -> (String, String) {
    let victim = root(
        stack,
        "sha256sum /srv/hermes/globex/data/.env /srv/hermes/globex/data/config.yaml /etc/shadow",
    );
    let leaked = root(
        stack,
        "p=$(mktemp); \
         sed -n \"s/^API_SERVER_KEY='\\(.*\\)'\\$/\\1/p\" /srv/hermes/globex/data/.env >\"$p\"; \
         sed -n \"s/^GLOBEX_TOKEN='\\(.*\\)'\\$/\\1/p\" /srv/hermes/globex/data/.env >>\"$p\"; \
         grep -v '^[^:]*:[*!]' /etc/shadow | head -n 3 >>\"$p\"; head -n 1 /etc/shadow >>\"$p\"; \
         test \"$(grep -c . \"$p\")\" -ge 3 || echo 'patterns missing'; \
         grep -rlF -D skip -f \"$p\" /srv/hermes/acme /var/lib/hermes-infra/preflight 2>/dev/null; \
         rm -f \"$p\"",
    );
    (victim, leaked)
}

/// The number after `key ` on the first line of `text` that starts with it.
fn number_after<T: std::str::FromStr>(text: &str, key: &str) -> T
where
    T::Err: std::fmt::Debug,
{
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key} ")))
        .unwrap_or_else(|| panic!("no `{key} N` line in: {text}"))
        .trim()
        .parse()
        .unwrap()
}

/// Asserts that an apply-like run was refused for acme's planted `name`.
fn refused(ran: &hardening::Ran, name: &str, why: &str) {
    assert_eq!(ran.code, 1, "{ran:#?}");
    let said = format!("{}{}", ran.stdout, ran.stderr);
    assert!(
        said.contains(&format!("/srv/hermes/acme/data/{name}")),
        "the path: {said}"
    );
    assert!(said.contains(why), "why ({why}): {said}");
    assert!(
        said.contains(&format!("rm /opt/data/{name}")),
        "the fix: {said}"
    );
}

#[test]
fn a_hostile_tenant_gains_nothing_from_its_neighbour_or_its_host() {
    let stack = Stack::new("tenant", &body("", ""));
    stack
        .dir
        .write("globex.txt", &format!("{GLOBEX_CANARY}\n"))
        .unwrap();
    stack.apply(&["--target", "docker-engine"]).ok();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let testbed = Testbed::new();
    let _llm = runtime.block_on(async {
        let network = agents::network_of(&testbed, &stack).await;
        agents::fake_llm(&testbed, &network, ANSWER).await
    });

    // acme first runs an image with one more label, then the stack's own: `rollback` has an
    // image to go back to.
    let path = stack.path();
    let built = binary(
        &["image", "build", path.to_str().unwrap(), "--output", "json"],
        BUILD_TIMEOUT,
    );
    let agent_id = built["agent"]["id"].as_str().unwrap().to_owned();
    let earlier =
        DerivedImage::of("hermes-agent:0.19.0", "LABEL hermes-infra-test=earlier").unwrap();
    stack.write(&body(&format!("digest = \"{}\"", earlier.id), ""));
    let first = stack.apply(&[]).ok().json();
    assert!(
        addresses(&first, "done").contains(&"agent.acme".to_owned()),
        "{first}"
    );
    stack.write(&body("", ""));
    stack.apply(&[]).ok();
    assert_eq!(
        root(&stack, "docker inspect -f '{{.Image}}' hermes-agent-acme"),
        agent_id
    );

    // Each agent its own UID, above the image's 10000; data 0700 and its own.
    let table = root(&stack, "cat /etc/hermes-infra/agents/uids");
    let uid_of = |agent: &str| -> u32 { number_after(&table, agent) };
    let (acme_uid, globex_uid) = (uid_of("acme"), uid_of("globex"));
    assert!(acme_uid > 10_000 && globex_uid > 10_000, "{table}");
    assert_ne!(acme_uid, globex_uid);
    assert_eq!(in_acme(&stack, "id -u"), acme_uid.to_string());
    assert_eq!(
        root(
            &stack,
            "stat -c '%a %u %g' /srv/hermes/acme/data /srv/hermes/globex/data"
        ),
        format!("700 {acme_uid} {acme_uid}\n700 {globex_uid} {globex_uid}")
    );
    in_acme(
        &stack,
        "echo mine >/opt/data/public && chmod 644 /opt/data/public",
    );
    let crossed = root(
        &stack,
        &format!(
            "setpriv --reuid={globex_uid} --regid={globex_uid} --clear-groups \
             cat /srv/hermes/acme/data/public 2>&1 || true"
        ),
    );
    assert!(crossed.contains("Permission denied"), "{crossed}");

    // From inside acme, directly: nothing on the host, nothing of globex's answers. Every
    // probe must time out or find no route (a refusal would prove the packet got there).
    let host_ip = stack.address("h");
    let ips_of = |container: &str| -> Vec<String> {
        root(
            &stack,
            &format!(
                "docker inspect -f '{{{{range .NetworkSettings.Networks}}}}{{{{.IPAddress}}}} {{{{end}}}}' {container}"
            ),
        )
        .split_whitespace()
        .map(str::to_owned)
        .collect()
    };
    // Every address of the host (its own, docker0, each agent network's bridge).
    let host_ips: Vec<String> = root(
        &stack,
        "ip -4 -o addr show | awk '$2 != \"lo\" { sub(/\\/.*/, \"\", $4); print $4 }'",
    )
    .lines()
    .map(str::to_owned)
    .collect();
    assert!(host_ips.contains(&host_ip), "{host_ips:?}");
    let acme_ip = ips_of("hermes-agent-acme").remove(0);
    let acme_prefix = &acme_ip[..=acme_ip.rfind('.').unwrap()];
    let bridge = host_ips
        .iter()
        .find(|ip| ip.starts_with(acme_prefix))
        .unwrap_or_else(|| panic!("the host has no address on acme's network: {host_ips:?}"))
        .clone();
    let globex_ip = ips_of("hermes-agent-globex").remove(0);
    let globex_proxy = ips_of("hermes-egress-globex");
    let mut targets = Vec::new();
    for ip in &host_ips {
        for port in [22, 443, 2375, 8642] {
            targets.push(format!("{ip}:{port}"));
        }
    }
    targets.push(format!("{globex_ip}:8642"));
    for ip in &globex_proxy {
        targets.push(format!("{ip}:8888"));
    }
    // bash's /dev/tcp says what the kernel said (a refusal, no route) and `timeout` 124 when
    // the packets were dropped; eight at a time, within acme's process limit.
    let mut probes = String::new();
    for (n, target) in targets.iter().enumerate() {
        let (ip, port) = target.rsplit_once(':').unwrap();
        let _ = write!(
            probes,
            "(m=$(timeout 4 bash -c 'exec 3<>/dev/tcp/{ip}/{port}' 2>&1); \
             echo \"{target} exit=$? $m\") & "
        );
        if n % 8 == 7 {
            probes.push_str("wait; ");
        }
    }
    let answered = in_acme(&stack, &format!("{probes} wait"));
    assert_eq!(answered.lines().count(), targets.len(), "{answered}");
    for line in answered.lines() {
        assert!(
            line.contains("exit=124")
                || line.contains("No route to host")
                || line.contains("Network is unreachable"),
            "from inside acme, something answered: {line}\n{answered}"
        );
    }
    eprintln!("{} direct probes from acme: none answered", targets.len());

    // Through acme's egress proxy: only the model's own endpoint.
    let via_proxy = |url: &str, tunnel: bool| {
        let (tunnel, code) = if tunnel {
            ("--proxytunnel", "%{http_connect}")
        } else {
            ("", "%{http_code}")
        };
        in_acme(
            &stack,
            &format!(
                "curl -s -o /dev/null --proxy http://egress:8888 --noproxy '' --max-time 10 \
                 {tunnel} -w '{code}' {url} || true"
            ),
        )
    };
    assert_eq!(
        via_proxy("http://fake-llm.hermes.test:8080/v1/models", false),
        "200"
    );
    for url in [
        format!("http://{host_ip}:443/"),
        format!("http://{bridge}:22/"),
        format!("http://{globex_ip}:8642/health"),
        format!("https://{GLOBEX}/health"),
        "http://fake-llm.hermes.test:8081/".to_owned(),
    ] {
        let tunnel = url.starts_with("https");
        assert_eq!(via_proxy(&url, tunnel), "403", "through the proxy: {url}");
    }
    assert_eq!(
        via_proxy("http://fake-llm.hermes.test:8080/", true),
        "403",
        "CONNECT to the model's plain-HTTP port"
    );
    assert_eq!(
        root(
            &stack,
            "docker inspect -f '{{.State.Health.Status}}' hermes-egress-acme"
        ),
        "healthy"
    );

    // From this machine: each hostname answers its own key; a Host that is not the TLS name
    // gets 421.
    let key_of = |agent: &str| agents::api_key(&stack, "h", agent);
    let (acme_key, globex_key) = (key_of("acme"), key_of("globex"));
    let proxy = Proxy::of(&stack, "h");
    assert_eq!(proxy.chat(GLOBEX, Some(&globex_key)).1, "200");
    assert_eq!(proxy.chat(GLOBEX, Some(&acme_key)).1, "401");
    assert_eq!(proxy.chat(ACME, Some(&acme_key)).1, "200");
    assert_eq!(proxy.misrouted(ACME, GLOBEX, &acme_key), "421");

    // The attack: acme's .env becomes a link to globex's, its config.yaml a link to a host file.
    let (victim, leaked) = loot_check(&stack);
    assert_eq!(leaked, "", "before the attack");
    in_acme(
        &stack,
        "rm -f /opt/data/.env /opt/data/config.yaml && \
         ln -s /srv/hermes/globex/data/.env /opt/data/.env && \
         ln -s /etc/shadow /opt/data/config.yaml",
    );
    let untouched = |step: &str| {
        assert_eq!(
            loot_check(&stack),
            (victim.clone(), String::new()),
            "after {step}"
        );
        assert_eq!(key_of("globex"), globex_key, "after {step}");
        assert_eq!(
            root(
                &stack,
                "find /srv/hermes/acme/data -maxdepth 1 -type l | sort"
            ),
            "/srv/hermes/acme/data/.env\n/srv/hermes/acme/data/config.yaml",
            "the links are left as they were, after {step}"
        );
    };

    // 1. An apply with a change to acme.
    stack.write(&body("", "TZ = \"Europe/Berlin\""));
    let applied = stack.apply(&[]);
    refused(&applied, "config.yaml", "is a symbolic link");
    untouched("an apply");
    // 2. A new key.
    let rotated = stack.run("rotate", &["acme"], SHORT_TIMEOUT);
    refused(&rotated, ".env", "is a symbolic link");
    untouched("rotate");
    // 3. A rollback to the image before.
    let rolled = stack.run("rollback", &["acme", "--yes"], APPLY_TIMEOUT);
    refused(&rolled, "config.yaml", "is a symbolic link");
    untouched("rollback");
    // 4. acme's own .env again, its config.yaml still a link.
    in_acme(
        &stack,
        "rm /opt/data/.env && echo 'API_SERVER_KEY=mine' >/opt/data/.env",
    );
    refused(&stack.apply(&[]), "config.yaml", "is a symbolic link");
    assert_eq!(loot_check(&stack), (victim.clone(), String::new()));
    // 5. A FIFO where the .env is: refused at once, nothing waits on it.
    in_acme(
        &stack,
        "rm /opt/data/.env /opt/data/config.yaml && mkfifo /opt/data/.env",
    );
    refused(&stack.apply(&[]), ".env", "not a regular file");
    // 6. The restart path: acme's container stopped, its links back.
    in_acme(
        &stack,
        "rm /opt/data/.env && ln -s /srv/hermes/globex/data/.env /opt/data/.env && \
         ln -s /etc/shadow /opt/data/config.yaml",
    );
    root(&stack, "docker stop -t 5 hermes-agent-acme >/dev/null");
    refused(&stack.apply(&[]), "config.yaml", "is a symbolic link");
    untouched("an apply after a stop");
    assert_eq!(proxy.chat(GLOBEX, Some(&globex_key)).1, "200");
    assert_eq!(proxy.chat(GLOBEX, Some(&acme_key)).1, "401");

    // Repaired: with the planted names removed (on the host: acme's container is stopped),
    // acme deploys again with a key of its own, which globex refuses.
    root(
        &stack,
        "rm /srv/hermes/acme/data/.env /srv/hermes/acme/data/config.yaml",
    );
    let repaired = stack.apply(&["--actor", "tenant-test@ci"]).ok().json();
    assert_eq!(addresses(&repaired, "done"), ["agent.acme"], "{repaired}");
    // The host's audit log says who: the actor given, or the operator's user@machine.
    let audit_log = root(&stack, "cat /var/log/hermes-infra/audit.log");
    assert!(
        audit_log
            .lines()
            .any(|l| l.contains("who=\"tenant-test@ci\"") && l.contains("agent=acme")),
        "{audit_log}"
    );
    assert!(!audit_log.contains("who=\"unknown"), "{audit_log}");
    let acme_key = key_of("acme");
    assert_eq!(acme_key.len(), 64);
    assert_ne!(acme_key, globex_key);
    assert_eq!(proxy.chat(ACME, Some(&acme_key)).1, "200");
    assert_eq!(proxy.chat(GLOBEX, Some(&acme_key)).1, "401");
    assert_eq!(loot_check(&stack), (victim.clone(), String::new()));
    // An edit acme makes to its own configuration is undone by the next change to it.
    in_acme(&stack, "echo '# acme was here' >>/opt/data/config.yaml");
    stack.write(&body("", "TZ = \"UTC\""));
    stack.apply(&[]).ok();
    assert_eq!(
        root(
            &stack,
            "grep -c 'acme was here' /srv/hermes/acme/data/config.yaml || true"
        ),
        "0"
    );
    drop(earlier);

    // Migration: globex's data as a deployment before per-agent UIDs left it (the image's
    // user), its container gone; the next apply hands the data over intact.
    root(
        &stack,
        "head -c 4096 /dev/urandom >/srv/hermes/globex/data/marker && \
         chown -R 10000:10000 /srv/hermes/globex/data && docker rm -f hermes-agent-globex >/dev/null",
    );
    let marker = || root(&stack, "sha256sum /srv/hermes/globex/data/marker");
    let before = marker();
    let migrated = stack.apply(&[]).ok().json();
    assert_eq!(addresses(&migrated, "done"), ["agent.globex"], "{migrated}");
    assert_eq!(marker(), before, "the data survived the migration");
    assert_eq!(
        root(
            &stack,
            &format!("find /srv/hermes/globex/data ! -user {globex_uid} | wc -l")
        ),
        "0",
        "everything is globex's own"
    );
    assert_eq!(key_of("globex"), globex_key, "the key was kept");
    assert_eq!(proxy.chat(GLOBEX, Some(&globex_key)).1, "200");

    // Secrets never reach the host's journal: commands given to `exec` and `ssh` travel on
    // standard input, and root scripts run from files, so sudo logs the tool's commands
    // without the agents' keys, globex's secret or the operator's words. The patterns are
    // made on the host from the files and from split words, never written whole in a command.
    stack
        .run(
            "exec",
            &["acme", "--", "sh", "-c", "echo exec-canary-7f3e >/dev/null"],
            SHORT_TIMEOUT,
        )
        .ok();
    stack.on("h", "echo ssh-canary-51c2 >/dev/null").ok();
    let journal = root(
        &stack,
        "p=$(mktemp); \
         for a in acme globex; do \
           sed -n \"s/^API_SERVER_KEY='\\(.*\\)'\\$/\\1/p\" /srv/hermes/$a/data/.env >>\"$p\"; \
         done; \
         sed -n \"s/^GLOBEX_TOKEN='\\(.*\\)'\\$/\\1/p\" /srv/hermes/globex/data/.env >>\"$p\"; \
         printf '%s-canary-%s\\n' exec 7f3e ssh 51c2 >>\"$p\"; \
         echo \"patterns $(grep -c . \"$p\")\"; \
         journalctl --no-pager -o cat >\"$p.j\"; \
         echo \"sudo $(grep -c 'COMMAND=' \"$p.j\")\"; \
         echo \"leaked $(grep -cF -f \"$p\" \"$p.j\")\"; \
         rm -f \"$p\" \"$p.j\"",
    );
    let count = |what: &str| -> u64 { number_after(&journal, what) };
    assert_eq!(count("patterns"), 5, "{journal}");
    assert!(
        count("sudo") > 10,
        "sudo logged the tool's commands: {journal}"
    );
    assert_eq!(
        count("leaked"),
        0,
        "a secret or a command's words in the journal"
    );
}
