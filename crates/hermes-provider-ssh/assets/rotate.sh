# hermes-infra: a new API key for one agent. Runs as root, after agent-files.sh. Set before
# this text: AGENT, AUDIT_WHO. The key is made here, written to the agent's 0600 .env by the
# agent's own UID (never printed, never through a link), and the gateway restarted to read
# it; the old key stops working once it is healthy again.
set -eu
umask 077
container=hermes-agent-$AGENT
log=/var/log/hermes-infra
audit() {
    mkdir -p "$log"
    printf '%s who="%s" agent=%s result=%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$AUDIT_WHO" "$AGENT" "$1" >>"$log/audit.log"
    chmod 600 "$log/audit.log"
}
fail() {
    audit "key-rotation-failed"
    echo "$*" >&2
    exit 3
}
[ -d "$data" ] || fail "agent $AGENT is not deployed on this host"
uid=$(stat -c %u "$data")
recorded=$(awk -v a="$AGENT" '$1 == a { print $2; exit }' "$uids" 2>/dev/null || true)
[ -n "$recorded" ] && [ "$uid" = "$recorded" ] ||
    fail "agent $AGENT: its data directory is not yet its own UID's; apply the stack first"
check_file "$uid" .env || fail "agent $AGENT is not deployed on this host (no $data/.env)"
key=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
{
    read_file "$uid" .env | grep -v '^API_SERVER_KEY=' || true
    printf "API_SERVER_KEY='%s'\n" "$key"
} | write_file "$uid" .env 600
docker restart -t 60 "$container" >/dev/null
waited=0
until [ "$(docker container inspect -f '{{.State.Health.Status}}' "$container")" = healthy ]; do
    waited=$((waited + 1))
    [ "$waited" -le 180 ] || fail "agent $AGENT did not become healthy within 180s after the new key"
    sleep 1
done
audit "key-rotated"
