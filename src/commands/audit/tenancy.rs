//! The tenant boundary, measured on a host: which UID each agent's processes run as and who owns
//! its data, what an agent can reach from inside its container (the host's addresses on 22, 443,
//! 2375 and 8642, the other agents and their egress proxies; its own egress proxy is the control
//! that proves the probes work), and the reverse proxy's TLS settings for each hostname it serves.
//!
//! The script prints facts, one `@@` line each; [`parse`] judges them. A probe passes when its
//! packets were dropped or found no route: a refusal means they reached something.

use std::collections::BTreeMap;

use serde::Serialize;

/// The UID that every agent shared before each got its own; an agent still on it has not been
/// applied since.
const SHARED_LEGACY_UID: u32 = 10_000;

/// The script, run as root on the host after the audit's prelude.
pub(crate) const SCRIPT: &str = r#"
command -v ip >/dev/null 2>&1 || fail "ip is missing (Debian package iproute2)"
agents=$(docker ps -q --filter label=hermes-infra/role=agent 2>/dev/null || true)
proxies=$(docker ps -q --filter label=hermes-infra/role=egress-proxy 2>/dev/null || true)
name_of() {
    n=$(docker inspect -f '{{index .Config.Labels "hermes-infra/address"}}' "$1" 2>/dev/null)
    n=${n#agent.}
    printf '%s\n' "${n:-$1}" | tr -c 'A-Za-z0-9._\n-' '_'
}
ips_of() { docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}' "$1" 2>/dev/null; }
host_ips=$(ip -4 -o addr show | awk '$2 != "lo" { sub(/\/.*/, "", $4); print $4 }')

for id in $agents; do
    name=$(name_of "$id")
    uids=$(docker top "$id" -eo pid,uid 2>/dev/null | awk 'NR > 1 { print $2 }' | sort -un | tr '\n' ',')
    data=$(docker inspect -f '{{range .Mounts}}{{if eq .Destination "/opt/data"}}{{.Source}}{{end}}{{end}}' "$id")
    if [ -n "$data" ] && [ -d "$data" ] && [ ! -L "$data" ]; then
        owner=$(stat -c '%u %a' "$data")
    else
        owner="- -"
    fi
    echo "@@user $name ${uids%,} $owner"
done

# Probes from inside each agent, as the agent's own user, at most 8 at a time, each bounded by
# `timeout 3`: bash's /dev/tcp says what the kernel said.
for id in $agents; do
    name=$(name_of "$id")
    {
        echo 'probe() {'
        echo '    m=$(timeout 3 bash -c "exec 3<>/dev/tcp/$2/$3" 2>&1); e=$?'
        echo '    printf "%s %s:%s %s %s\n" "$1" "$2" "$3" "$e" "$(printf %s "$m" | tr "\n" " " | cut -c1-160)"'
        echo '}'
        echo 'n=0'
        echo 'next() { n=$((n + 1)); [ $((n % 8)) -ne 0 ] || wait; }'
        echo 'probe own-proxy egress 8888 & next'
        for ip in $host_ips; do
            for port in 22 443 2375 8642; do echo "probe host $ip $port & next"; done
        done
        for other in $agents; do
            [ "$other" != "$id" ] || continue
            for ip in $(ips_of "$other"); do echo "probe neighbour $ip 8642 & next"; done
        done
        for other in $proxies; do
            [ "$(name_of "$other")" != "$name" ] || continue
            for ip in $(ips_of "$other"); do echo "probe neighbour $ip 8888 & next"; done
        done
        echo 'wait'
    } >"$work/probe"
    if timeout 120 docker exec -i "$id" bash -s <"$work/probe" >"$work/probed" 2>"$work/err"; then
        sed "s/^/@@probe $name /" "$work/probed"
    else
        echo "@@error agent $name: the probes could not run inside its container: $(tail -n 2 "$work/err" | tr '\n' ' ')"
    fi
done

# The reverse proxy, from the host itself: each hostname nginx serves.
if command -v nginx >/dev/null 2>&1 && systemctl is-active --quiet nginx; then
    nginx -T >"$work/nginx" 2>/dev/null || fail "nginx -T failed: its configuration does not load"
    port=$(sed -n 's/^[[:space:]]*listen[[:space:]][[:space:]]*\([0-9][0-9]*\)[[:space:]][[:space:]]*ssl.*default_server.*/\1/p' "$work/nginx" | head -n 1)
    names=$(sed -n 's/^[[:space:]]*server_name[[:space:]][[:space:]]*\([^;]*\);.*/\1/p' "$work/nginx" | tr ' ' '\n' | grep -v -e '^_$' -e '^$' | sort -u)
    if [ -n "$port" ]; then
        # A default server on 80 and on the TLS port: neither may show nginx's welcome page.
        for url in "http://127.0.0.1/" "https://127.0.0.1:$port/"; do
            if curl -sk --max-time 10 "$url" 2>/dev/null | grep -qi 'welcome to nginx'; then echo "@@welcome $url"; fi
        done
    fi
    for name in $names; do
        [ -n "$port" ] || break
        tls() { # tls CHECK OPENSSL-ARGS...: did a handshake complete?
            check=$1
            shift
            if timeout 10 openssl s_client -connect "127.0.0.1:$port" -servername "$name" "$@" </dev/null >"$work/s" 2>&1; then
                echo "@@tls $name $check handshake"
            else
                echo "@@tls $name $check refused"
            fi
        }
        # A client at security level 0 offers what a weak client would: only the server refuses.
        tls tls1.1 -tls1_1 -cipher 'DEFAULT:@SECLEVEL=0'
        tls tls1.2-cbc -tls1_2 -cipher 'ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA:ECDHE-ECDSA-AES128-SHA256:ECDHE-RSA-AES128-SHA256:ECDHE-ECDSA-AES256-SHA384:ECDHE-RSA-AES256-SHA384:@SECLEVEL=0'
        tls tls1.2-no-ecdhe -tls1_2 -cipher 'AES128-GCM-SHA256:AES256-GCM-SHA384:DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:@SECLEVEL=0'
        tls tls1.2-ecdhe-aead -tls1_2 -cipher 'ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305'
        tls tls1.3 -tls1_3
        : >"$work/h"
        curl -sk -o /dev/null -D "$work/h" --max-time 10 --resolve "$name:$port:127.0.0.1" "https://$name:$port/" 2>/dev/null || true
        echo "@@hsts $name $(grep -ci '^strict-transport-security:' "$work/h")"
        echo "@@server $name $(sed -n 's/^[Ss][Ee][Rr][Vv][Ee][Rr]:[[:space:]]*//p' "$work/h" | tr -d '\r' | head -n 1)"
        code=$(curl -sk -o /dev/null -w '%{http_code}' --max-time 10 --resolve "$name:$port:127.0.0.1" \
            -H 'Host: hermes-infra-audit.invalid' "https://$name:$port/" 2>/dev/null || true)
        echo "@@misrouted $name ${code:-none}"
    done
fi
"#;

/// One agent's processes and data directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct AgentUser {
    /// The UIDs its container's processes run as.
    pub(crate) uids: Vec<u32>,
    /// The UID that owns its data directory, when there is one.
    pub(crate) data_owner: Option<u32>,
    /// The data directory's mode (`700`).
    pub(crate) data_mode: Option<String>,
}

/// The tenant boundary of one host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub(crate) struct Tenancy {
    /// Each running agent, by name.
    pub(crate) users: BTreeMap<String, AgentUser>,
    /// Connections tried from inside agents (the controls included).
    pub(crate) probes: usize,
    /// TLS and HTTP checks of the reverse proxy.
    pub(crate) tls_checks: usize,
    /// What breaks the boundary, each with the agent or hostname and what was seen.
    pub(crate) problems: Vec<String>,
}

/// Judges the script's output.
pub(crate) fn parse(output: &str) -> Tenancy {
    let mut tenancy = Tenancy::default();
    for line in output.lines() {
        let Some((tag, rest)) = line.split_once(' ') else {
            continue;
        };
        match tag {
            "@@user" => user(&mut tenancy, &rest.split_whitespace().collect::<Vec<_>>()),
            "@@probe" => {
                tenancy.probes += 1;
                if let Some(problem) = probe(rest) {
                    tenancy.problems.push(problem);
                }
            }
            "@@tls" | "@@hsts" | "@@server" | "@@misrouted" | "@@welcome" => {
                tenancy.tls_checks += 1;
                tenancy.problems.extend(proxy_check(tag, rest));
            }
            "@@error" => tenancy.problems.push(rest.to_owned()),
            _ => {}
        }
    }
    shared_uids(&mut tenancy);
    tenancy
}

/// One check of the reverse proxy (`@@tls NAME CHECK RESULT`, `@@hsts NAME COUNT`,
/// `@@server NAME HEADER`, `@@misrouted NAME CODE`, `@@welcome URL`): the problem it shows.
fn proxy_check(tag: &str, rest: &str) -> Option<String> {
    let words: Vec<&str> = rest.split_whitespace().collect();
    match (tag, &words[..]) {
        ("@@tls", [name, check, result]) => {
            let needed = matches!(*check, "tls1.2-ecdhe-aead" | "tls1.3");
            let refused = *result != "handshake";
            match (needed, refused) {
                (true, true) => Some(format!(
                    "proxy {name}: {check} is refused (clients need it)"
                )),
                (false, false) => Some(format!(
                    "proxy {name}: {check} is accepted (the proxy must refuse it)"
                )),
                _ => None,
            }
        }
        ("@@hsts", [name, count]) => (*count != "1").then(|| {
            format!("proxy {name}: {count} Strict-Transport-Security headers (one wanted)")
        }),
        ("@@server", [name, ..]) => {
            let server = rest[name.len()..].trim();
            server.contains('/').then(|| {
                format!(
                    "proxy {name}: the Server header names a version ({server}): server_tokens off"
                )
            })
        }
        ("@@misrouted", [name, code]) => (*code != "421").then(|| {
            format!(
                "proxy {name}: a request for another Host over its TLS name answered {code}, not 421"
            )
        }),
        ("@@welcome", _) => Some(format!("proxy: {rest} serves nginx's welcome page")),
        _ => None,
    }
}

/// `@@user NAME UID,UID OWNER MODE`.
fn user(tenancy: &mut Tenancy, words: &[&str]) {
    let (name, uids, owner, mode) = match words {
        [name, uids, owner, mode] => (*name, *uids, *owner, *mode),
        // No process listed: the UID field is empty.
        [name, owner, mode] => (*name, "", *owner, *mode),
        _ => return,
    };
    let uids: Vec<u32> = uids.split(',').filter_map(|u| u.parse().ok()).collect();
    let data_owner = owner.parse().ok();
    let data_mode = (mode != "-").then(|| mode.to_owned());
    let problems = &mut tenancy.problems;
    if uids.is_empty() {
        problems.push(format!(
            "agent {name}: no process of its container was found"
        ));
    }
    for uid in &uids {
        match *uid {
            0 => problems.push(format!("agent {name}: a process runs as root")),
            SHARED_LEGACY_UID => problems.push(format!(
                "agent {name}: runs as UID {SHARED_LEGACY_UID}, which agents of older versions \
                 share: apply the stack again to give it a UID of its own"
            )),
            _ => {}
        }
    }
    match (data_owner, uids.as_slice()) {
        (None, _) => problems.push(format!(
            "agent {name}: no data directory is mounted at /opt/data"
        )),
        (Some(owner), [uid]) if owner != *uid => problems.push(format!(
            "agent {name}: its data directory belongs to UID {owner}, not to its UID {uid}"
        )),
        _ => {}
    }
    if let Some(mode) = &data_mode
        && mode != "700"
    {
        problems.push(format!(
            "agent {name}: its data directory has mode {mode}, not 700"
        ));
    }
    tenancy.users.insert(
        name.to_owned(),
        AgentUser {
            uids,
            data_owner,
            data_mode,
        },
    );
}

/// Two agents on one UID can read each other's files.
fn shared_uids(tenancy: &mut Tenancy) {
    let mut by_uid: BTreeMap<u32, Vec<&str>> = BTreeMap::new();
    for (name, user) in &tenancy.users {
        for uid in &user.uids {
            by_uid.entry(*uid).or_default().push(name);
        }
    }
    for (uid, names) in by_uid {
        if names.len() > 1 {
            tenancy.problems.push(format!(
                "agents {} share UID {uid}: each can read the others' files",
                names.join(", ")
            ));
        }
    }
}

/// `AGENT KIND IP:PORT EXIT MESSAGE`: a problem when a host or neighbour answered or refused,
/// or when the control (the agent's own egress proxy) did not answer.
fn probe(rest: &str) -> Option<String> {
    let mut words = rest.splitn(5, ' ');
    let (agent, kind, target, exit) = (words.next()?, words.next()?, words.next()?, words.next()?);
    let message = words.next().unwrap_or("").trim();
    let connected = exit == "0";
    let silent = exit == "124"
        || message.contains("No route to host")
        || message.contains("Network is unreachable");
    if kind == "own-proxy" {
        return (!connected).then(|| {
            format!(
                "agent {agent}: its own egress proxy ({target}) did not answer (exit {exit}: \
                 {message}), so its probes prove nothing"
            )
        });
    }
    if connected {
        Some(format!(
            "agent {agent}: reached {kind} {target}: nothing but its egress proxy may answer"
        ))
    } else if silent {
        None
    } else {
        Some(format!(
            "agent {agent}: {kind} {target} answered with `{message}` (exit {exit}): the packets \
             reached it, the host's firewall should drop them"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEALTHY: &str = "\
@@user acme 10001 10001 700
@@user globex 10002 10002 700
@@probe acme own-proxy egress:8888 0 
@@probe acme host 10.213.0.1:22 124 
@@probe acme host 172.18.0.2:443 1 bash: connect: Network is unreachable bash: line 1: /dev/tcp/172.18.0.2/443: Invalid argument
@@probe acme neighbour 10.213.1.10:8642 1 bash: connect: No route to host
@@probe globex own-proxy egress:8888 0 
@@probe globex host 10.213.1.1:2375 124 
@@tls acme.hermes.test tls1.1 refused
@@tls acme.hermes.test tls1.2-cbc refused
@@tls acme.hermes.test tls1.2-no-ecdhe refused
@@tls acme.hermes.test tls1.2-ecdhe-aead handshake
@@tls acme.hermes.test tls1.3 handshake
@@hsts acme.hermes.test 1
@@server acme.hermes.test nginx
@@misrouted acme.hermes.test 421
";

    #[test]
    fn a_sound_boundary_has_no_problems_and_counts_what_was_tried() {
        let tenancy = parse(HEALTHY);
        assert_eq!(tenancy.problems, Vec::<String>::new());
        assert_eq!(tenancy.probes, 6);
        assert_eq!(tenancy.tls_checks, 8);
        assert_eq!(
            tenancy.users["acme"],
            AgentUser {
                uids: vec![10001],
                data_owner: Some(10001),
                data_mode: Some("700".into())
            }
        );
    }

    #[test]
    fn root_the_legacy_uid_a_shared_uid_and_loose_data_are_problems() {
        let tenancy = parse(
            "@@user acme 0,10003 10003 755\n@@user globex 10000 10000 700\n\
             @@user initech 10003 10004 700\n@@user umbrella - -\n",
        );
        let problems = tenancy.problems.join("\n");
        for expected in [
            "agent acme: a process runs as root",
            "agent acme: its data directory has mode 755, not 700",
            "agent globex: runs as UID 10000",
            "agent initech: its data directory belongs to UID 10004, not to its UID 10003",
            "agent umbrella: no process of its container was found",
            "agent umbrella: no data directory is mounted at /opt/data",
            "agents acme, initech share UID 10003",
        ] {
            assert!(
                problems.contains(expected),
                "`{expected}` missing:\n{problems}"
            );
        }
    }

    #[test]
    fn an_answer_a_refusal_or_a_dead_control_is_a_problem() {
        let tenancy = parse(
            "@@probe acme host 10.213.0.1:443 0 \n\
             @@probe acme host 10.213.0.1:22 1 bash: connect: Connection refused\n\
             @@probe acme own-proxy egress:8888 124 \n",
        );
        let problems = tenancy.problems.join("\n");
        assert_eq!(tenancy.problems.len(), 3, "{problems}");
        assert!(problems.contains("agent acme: reached host 10.213.0.1:443"));
        assert!(
            problems
                .contains("host 10.213.0.1:22 answered with `bash: connect: Connection refused`")
        );
        assert!(problems.contains("its own egress proxy (egress:8888) did not answer"));
    }

    #[test]
    fn weak_tls_extra_headers_a_version_a_misroute_and_the_welcome_page_are_problems() {
        let tenancy = parse(
            "@@tls a.test tls1.1 handshake\n@@tls a.test tls1.2-cbc handshake\n\
             @@tls a.test tls1.2-ecdhe-aead refused\n@@hsts a.test 2\n\
             @@server a.test nginx/1.22.1\n@@misrouted a.test 200\n\
             @@welcome http://127.0.0.1/\n@@error agent x: the probes could not run\n",
        );
        let problems = tenancy.problems.join("\n");
        for expected in [
            "proxy a.test: tls1.1 is accepted",
            "proxy a.test: tls1.2-cbc is accepted",
            "proxy a.test: tls1.2-ecdhe-aead is refused",
            "proxy a.test: 2 Strict-Transport-Security headers",
            "names a version (nginx/1.22.1)",
            "answered 200, not 421",
            "proxy: http://127.0.0.1/ serves nginx's welcome page",
            "agent x: the probes could not run",
        ] {
            assert!(
                problems.contains(expected),
                "`{expected}` missing:\n{problems}"
            );
        }
        assert_eq!(tenancy.tls_checks, 7);
    }

    #[test]
    fn the_script_probes_the_hosts_ports_and_checks_each_tls_setting() {
        for expected in [
            "for port in 22 443 2375 8642",
            "probe own-proxy egress 8888",
            "-tls1_1",
            "tls1.2-cbc",
            "Host: hermes-infra-audit.invalid",
            "docker exec -i \"$id\" bash -s",
        ] {
            assert!(SCRIPT.contains(expected), "{expected}");
        }
    }
}
