# hermes-infra agent script: deploys one agent on this host, idempotently. Runs as root, after
# agent-files.sh (how root reaches into the agent's data directory: never through a path the
# agent can write). Set before this text: AGENT, IMAGE (the tag the stack deploys),
# IMAGE_PLACEHOLDER and USER_PLACEHOLDER (the words in the run arguments that stand for the id
# IMAGE names here and for the agent's own UID:GID), EGRESS_IMAGE, AUDIT_WHO, AUDIT_PLAN,
# HEALTHY_WITHIN (seconds).
# Reads a tar stream on stdin: config.yaml, env (the agent's .env without its API key: every
# other secret), preflight.env (the same without the messaging bridges' tokens: a trial run
# must not poll a bot beside the running agent), tinyproxy.conf, filter, egress.health (the
# proxy's health check), run.args and preflight.args (one `docker` argument a line; the
# preflight's data is /var/lib/hermes-infra/preflight/$AGENT/data), labels (`--label=K=V` lines
# for the networks and the proxy), manifest.json.
# The agent runs as a UID of its own (agent_uid), which owns its data directory (0700). Data
# that another UID owns (a deployment from before per-agent UIDs) is handed over, links
# themselves and never their targets, while no gateway runs, and handed back if the new
# gateway fails.
# The agent's API key lives here and only here: kept across applies, made on first deploy.
# A new image or configuration starts first in a scratch home (the running agent keeps
# serving); only when that one is healthy is the agent replaced, and if the replacement is not
# healthy the previous container is started again. Data is never touched but by Hermes.
# The image a replaced container ran stays tagged hermes-infra-rollback:$AGENT (kept for
# `hermes-infra rollback`). Prints one JSON line: {"changed": [...], "image": "<id running>"}.
set -eu
umask 077
state=/var/lib/hermes-infra
stage=$(mktemp -d "$state/agent-$AGENT.XXXXXX")
trap 'rm -rf "$stage"' EXIT
tar -x -o -C "$stage" -f -
log=/var/log/hermes-infra
mkdir -p "$log" /etc/hermes-infra/agents
chmod 700 "$log"
container=hermes-agent-$AGENT
previous=$container-previous
preflight=$container-preflight
proxy=hermes-egress-$AGENT
net=hermes-net-$AGENT
egress_net=hermes-egress
egress_conf=/etc/hermes-infra/egress/$AGENT
changed=""
scratch=$state/preflight/$AGENT

add() { changed="$changed${changed:+,}\"$1\""; }
audit() {
    printf '%s who="%s" plan=%s agent=%s result=%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
        "$AUDIT_WHO" "$AUDIT_PLAN" "$AGENT" "$1" >>"$log/audit.log"
    chmod 600 "$log/audit.log"
}
fail() {
    audit "failed"
    echo "$*" >&2
    exit 3
}
args_of() { # args_of FILE [ARG]: `docker` with the file's lines (ARG after the first), no
    # shell evaluation of any line
    file=$1
    extra=${2:-}
    set --
    while IFS= read -r line; do
        [ "$line" = "$IMAGE_PLACEHOLDER" ] && line=$image_id
        [ "$line" = "--user=$USER_PLACEHOLDER" ] && line="--user=$uid:$uid"
        set -- "$@" "$line"
        if [ -n "$extra" ]; then
            set -- "$@" "$extra"
            extra=""
        fi
    done <"$file"
    docker "$@"
}
labels_of() {
    set --
    while IFS= read -r line; do set -- "$@" "$line"; done <"$stage/labels"
    printf '%s\n' "$@"
}
healthy_within() { # healthy_within CONTAINER SECONDS; a crash (a restart) ends the wait
    waited=0
    while [ "$waited" -lt "$2" ]; do
        status=$(docker container inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{end}} {{.State.Status}} {{.RestartCount}}' "$1" 2>/dev/null || echo "gone gone 0")
        case "$status" in
            "healthy running 0") return 0 ;;
            *" exited "* | *" dead "* | "gone gone 0" | *" restarting "*) return 1 ;;
            *" 0") ;;
            *) return 1 ;;
        esac
        sleep 1
        waited=$((waited + 1))
    done
    return 1
}
last_words() { docker logs --tail 15 "$1" 2>&1 | sed 's/^/    /' >&2 || true; }

image_id=$(docker image inspect -f '{{.Id}}' "$IMAGE" 2>/dev/null) ||
    fail "the image $IMAGE is not on this host; send it with \`hermes-infra image push\`"
egress_id=$(docker image inspect -f '{{.Id}}' "$EGRESS_IMAGE" 2>/dev/null) ||
    fail "the image $EGRESS_IMAGE is not on this host; send it with \`hermes-infra image push\`"

# The data directory (the agent's /opt/data): its own UID's, 0700. Its files are looked at
# as the data's owner, and refused before anything changes when they are not regular files.
uid=$(agent_uid) || exit 3
install -d -o root -g root -m 755 /srv/hermes "$home"
[ -d "$data" ] || install -d -o "$uid" -g "$uid" -m 700 "$data"
owner=$(stat -c %u "$data")
[ "$owner" != 0 ] || fail "agent $AGENT: its data directory $data belongs to root; give it to the agent's UID (chown -R -P $uid:$uid $data) or remove it, then apply again"
had_config=""
had_env=""
check_file "$owner" config.yaml && had_config=yes
check_file "$owner" .env && had_env=yes

# Networks: the agent's own, internal (no route out), on a /24 of 10.213.0.0/16 that no other
# network or route of this host uses, so that the agent keeps one address (.10) for the
# reverse proxy across restarts and reboots; the host's egress network for proxies.
if ! docker network inspect "$net" >/dev/null 2>&1; then
    used=" $(docker network inspect -f '{{range .IPAM.Config}}{{.Subnet}} {{end}}' $(docker network ls -q) 2>/dev/null | tr '\n' ' ') $(ip -4 route show | awk '{printf "%s ", $1}') "
    case "$used" in *" 10.0.0.0/8 "* | *" 10.213.0.0/16 "*) fail "10.213.0.0/16 overlaps a network of this host; agents need a /24 of it" ;; esac
    subnet=""
    i=0
    while [ "$i" -lt 256 ]; do
        case "$used" in *" 10.213.$i."*) ;; *)
            subnet=10.213.$i.0/24
            break
            ;;
        esac
        i=$((i + 1))
    done
    [ -n "$subnet" ] || fail "every /24 of 10.213.0.0/16 is in use on this host"
    set -- $(labels_of)
    docker network create --internal --subnet "$subnet" "$@" "$net" >/dev/null
    add network
fi
subnet=$(docker network inspect -f '{{range .IPAM.Config}}{{.Subnet}}{{end}}' "$net")
agent_ip=${subnet%.0/24}.10
case "$agent_ip" in 10.213.*.10) ;; *) fail "network $net is not a /24 of 10.213.0.0/16 ($subnet); remove it and apply again" ;; esac
if ! docker network inspect "$egress_net" >/dev/null 2>&1; then
    docker network create --label hermes-infra/role=egress "$egress_net" >/dev/null
fi

# The egress proxy: its configuration, and its container when either changed.
mkdir -p "$egress_conf"
chmod 755 /etc/hermes-infra /etc/hermes-infra/egress "$egress_conf"
proxy_changed=""
for f in tinyproxy.conf filter egress.health; do
    if ! cmp -s "$stage/$f" "$egress_conf/$f"; then
        install -m 644 "$stage/$f" "$egress_conf/$f"
        proxy_changed=yes
    fi
done
# A proxy without a health check (made by an older version) or found unhealthy is made anew.
running_proxy=$(docker container inspect -f '{{.Image}} {{.State.Running}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' "$proxy" 2>/dev/null || true)
case "$running_proxy" in "$egress_id true healthy" | "$egress_id true starting") ;; *) proxy_changed=yes ;; esac
if [ -n "$proxy_changed" ]; then
    docker rm -f "$proxy" >/dev/null 2>&1 || true
    set -- $(labels_of)
    docker run -d --name "$proxy" --pull=never --read-only --cap-drop=ALL \
        --security-opt=no-new-privileges --restart=unless-stopped --memory=64m \
        --memory-swap=64m --cpus=0.5 --pids-limit=64 --network="$egress_net" \
        --mount "type=bind,src=$egress_conf,dst=/etc/tinyproxy,readonly" \
        --health-cmd="$(cat "$egress_conf/egress.health")" --health-interval=30s \
        --health-timeout=5s --health-retries=3 --health-start-period=5s \
        "$@" "$egress_id" >/dev/null
    docker network connect --alias egress "$net" "$proxy"
    add egress-proxy
fi

install -m 600 "$stage/config.yaml" "$stage/config.yaml.new"
key=""
[ -z "$had_env" ] || key=$(read_file "$owner" .env | sed -n "s/^API_SERVER_KEY='\([0-9a-f]*\)'\$/\1/p" | head -n 1)
[ -n "$key" ] || key=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
{ cat "$stage/env"; printf "API_SERVER_KEY='%s'\n" "$key"; } >"$stage/env.new"
files_changed=""
read_file "$owner" config.yaml | cmp -s "$stage/config.yaml.new" - || files_changed=yes
read_file "$owner" .env | cmp -s "$stage/env.new" - || files_changed=yes
# The container's own settings (limits, environment, ...) as last started.
cmp -s "$stage/run.args" "/etc/hermes-infra/agents/$AGENT.args" || files_changed=yes
[ "$owner" = "$uid" ] || files_changed=yes
[ "$(stat -c %a "$data")" = 700 ] || chmod 700 "$data"

# The reverse proxy's way to this agent (when the host has one).
upstream() {
    dir=/etc/hermes-infra/proxy/upstreams
    [ -d "$dir" ] || return 0
    line="server $agent_ip:8642;"
    if [ "$(cat "$dir/$AGENT.conf" 2>/dev/null)" != "$line" ]; then
        printf '%s\n' "$line" >"$dir/$AGENT.conf"
        chmod 644 "$dir/$AGENT.conf"
        if systemctl is-active --quiet nginx; then
            nginx -t >/dev/null 2>&1 && systemctl reload nginx || fail "nginx did not take the agent's address"
        fi
        add upstream
    fi
}

running=$(docker container inspect -f '{{.Image}} {{.State.Running}}' "$container" 2>/dev/null || true)
if [ -z "$files_changed" ] && [ "$running" = "$image_id true" ]; then
    upstream
    install -m 600 "$stage/manifest.json" "/etc/hermes-infra/agents/$AGENT.json"
    printf '{"changed":[%s],"image":"%s"}\n' "$changed" "$image_id"
    exit 0
fi

# First, the new image and configuration in a scratch home while the agent keeps serving.
# The scratch home is made anew, after any earlier trial run is gone, inside a root-only
# directory: no process of the agent's can have reached into it.
docker rm -f "$preflight" >/dev/null 2>&1 || true
rm -rf "$scratch"
install -d -o root -g root -m 700 "$state/preflight"
install -d -o root -g root -m 755 "$scratch"
install -d -o "$uid" -g "$uid" -m 700 "$scratch/data"
install -o "$uid" -g "$uid" -m 640 "$stage/config.yaml" "$scratch/data/config.yaml"
{ cat "$stage/preflight.env"; printf "API_SERVER_KEY='%s'\n" "$key"; } >"$stage/preflight.env.new"
install -o "$uid" -g "$uid" -m 600 "$stage/preflight.env.new" "$scratch/data/.env"
if ! args_of "$stage/preflight.args" >/dev/null 2>"$stage/run.err" ||
    ! healthy_within "$preflight" "$HEALTHY_WITHIN"; then
    echo "the new agent did not become healthy within ${HEALTHY_WITHIN}s in a scratch home; the running agent was left as it was. What it said:" >&2
    sed 's/^/    /' "$stage/run.err" >&2
    last_words "$preflight"
    docker rm -f "$preflight" >/dev/null 2>&1 || true
    rm -rf "$scratch"
    fail "agent $AGENT: upgrade refused"
fi
docker rm -f "$preflight" >/dev/null 2>&1 || true
rm -rf "$scratch"

# Then the swap: one gateway per data directory, so the old one stops first.
docker rm -f "$previous" >/dev/null 2>&1 || true
had_previous=""
if docker container inspect "$container" >/dev/null 2>&1; then
    docker stop -t 60 "$container" >/dev/null 2>&1 || true
    docker rename "$container" "$previous"
    had_previous=yes
fi
# No gateway of this agent runs now: data another UID owns becomes the agent's (links
# themselves, never their targets), and the files are replaced by the agent's own UID.
if [ "$owner" != "$uid" ]; then
    chown -R -P -h "$uid:$uid" "$data"
    chmod 700 "$data"
fi
[ -z "$had_config" ] || read_file "$uid" config.yaml >"$stage/config.yaml.old"
[ -z "$had_env" ] || read_file "$uid" .env >"$stage/env.old"
write_file "$uid" config.yaml 640 <"$stage/config.yaml.new"
write_file "$uid" .env 600 <"$stage/env.new"
if ! args_of "$stage/run.args" "--ip=$agent_ip" >/dev/null 2>"$stage/run.err" ||
    ! healthy_within "$container" "$HEALTHY_WITHIN"; then
    echo "the new agent did not become healthy within ${HEALTHY_WITHIN}s on its data; the previous one was started again. What it said:" >&2
    sed 's/^/    /' "$stage/run.err" >&2
    last_words "$container"
    docker rm -f "$container" >/dev/null 2>&1 || true
    [ -z "$had_config" ] || write_file "$uid" config.yaml 640 <"$stage/config.yaml.old"
    [ -z "$had_env" ] || write_file "$uid" .env 600 <"$stage/env.old"
    [ "$owner" = "$uid" ] || chown -R -P -h "$owner:$owner" "$data"
    if [ -n "$had_previous" ]; then
        docker rename "$previous" "$container"
        docker start "$container" >/dev/null
    fi
    fail "agent $AGENT: upgrade rolled back"
fi
if [ -n "$had_previous" ]; then
    old_image=$(docker container inspect -f '{{.Image}}' "$previous")
    [ "$old_image" = "$image_id" ] || docker tag "$old_image" "hermes-infra-rollback:$AGENT"
    docker rm -f "$previous" >/dev/null
fi
upstream
install -m 600 "$stage/run.args" "/etc/hermes-infra/agents/$AGENT.args"
install -m 600 "$stage/manifest.json" "/etc/hermes-infra/agents/$AGENT.json"
audit "applied"
add container
printf '{"changed":[%s],"image":"%s"}\n' "$changed" "$image_id"
