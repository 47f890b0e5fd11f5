# hermes-infra agent script: deploys one agent on this host, idempotently. Runs as root.
# Set before this text: AGENT, IMAGE (the tag the stack deploys), IMAGE_PLACEHOLDER (the word
# in the run arguments that stands for the id IMAGE names here), EGRESS_IMAGE, AUDIT_WHO,
# AUDIT_PLAN, HEALTHY_WITHIN (seconds).
# Reads a tar stream on stdin: config.yaml, env (the agent's .env without its API key: every
# other secret), preflight.env (the same without the messaging bridges' tokens: a trial run
# must not poll a bot beside the running agent), tinyproxy.conf, filter, run.args and preflight.args (one `docker` argument a
# line; the preflight's data is /var/lib/hermes-infra/preflight/$AGENT/data), labels
# (`--label=K=V` lines for the networks and the proxy), manifest.json.
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
home=/srv/hermes/$AGENT
data=$home/data
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
for f in tinyproxy.conf filter; do
    if ! cmp -s "$stage/$f" "$egress_conf/$f"; then
        install -m 644 "$stage/$f" "$egress_conf/$f"
        proxy_changed=yes
    fi
done
running_proxy=$(docker container inspect -f '{{.Image}} {{.State.Running}}' "$proxy" 2>/dev/null || true)
if [ -n "$proxy_changed" ] || [ "$running_proxy" != "$egress_id true" ]; then
    docker rm -f "$proxy" >/dev/null 2>&1 || true
    set -- $(labels_of)
    docker run -d --name "$proxy" --pull=never --read-only --cap-drop=ALL \
        --security-opt=no-new-privileges --restart=unless-stopped --memory=64m \
        --memory-swap=64m --cpus=0.5 --pids-limit=64 --network="$egress_net" \
        --mount "type=bind,src=$egress_conf,dst=/etc/tinyproxy,readonly" \
        "$@" "$egress_id" >/dev/null
    docker network connect --alias egress "$net" "$proxy"
    add egress-proxy
fi

# The data directory (the agent's /opt/data), owned by the image's user.
install -d -o root -g root -m 755 /srv/hermes
install -d -o root -g root -m 755 "$home"
install -d -o 10000 -g 10000 -m 700 "$data"
install -o 10000 -g 10000 -m 640 "$stage/config.yaml" "$stage/config.yaml.new"
key=""
if [ -f "$data/.env" ]; then
    key=$(sed -n "s/^API_SERVER_KEY='\([0-9a-f]*\)'\$/\1/p" "$data/.env" | head -n 1)
fi
[ -n "$key" ] || key=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
{ cat "$stage/env"; printf "API_SERVER_KEY='%s'\n" "$key"; } >"$stage/env.new"
files_changed=""
cmp -s "$stage/config.yaml.new" "$data/config.yaml" || files_changed=yes
cmp -s "$stage/env.new" "$data/.env" || files_changed=yes
# The container's own settings (limits, environment, ...) as last started.
cmp -s "$stage/run.args" "/etc/hermes-infra/agents/$AGENT.args" || files_changed=yes

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
rm -rf "$scratch"
install -d -o root -g root -m 700 "$state/preflight"
install -d -o root -g root -m 755 "$scratch"
install -d -o 10000 -g 10000 -m 700 "$scratch/data"
install -o 10000 -g 10000 -m 640 "$stage/config.yaml" "$scratch/data/config.yaml"
{ cat "$stage/preflight.env"; printf "API_SERVER_KEY='%s'\n" "$key"; } >"$stage/preflight.env.new"
install -o 10000 -g 10000 -m 600 "$stage/preflight.env.new" "$scratch/data/.env"
docker rm -f "$preflight" >/dev/null 2>&1 || true
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
[ -f "$data/config.yaml" ] && cp -p "$data/config.yaml" "$stage/config.yaml.old"
[ -f "$data/.env" ] && cp -p "$data/.env" "$stage/env.old"
mv "$stage/config.yaml.new" "$data/config.yaml"
install -o 10000 -g 10000 -m 600 "$stage/env.new" "$data/.env"
if ! args_of "$stage/run.args" "--ip=$agent_ip" >/dev/null 2>"$stage/run.err" ||
    ! healthy_within "$container" "$HEALTHY_WITHIN"; then
    echo "the new agent did not become healthy within ${HEALTHY_WITHIN}s on its data; the previous one was started again. What it said:" >&2
    sed 's/^/    /' "$stage/run.err" >&2
    last_words "$container"
    docker rm -f "$container" >/dev/null 2>&1 || true
    [ -f "$stage/config.yaml.old" ] && cp -p "$stage/config.yaml.old" "$data/config.yaml"
    [ -f "$stage/env.old" ] && cp -p "$stage/env.old" "$data/.env"
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
