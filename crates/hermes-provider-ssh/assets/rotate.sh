# hermes-infra: a new API key for one agent. Runs as root. Set before this text: AGENT,
# AUDIT_WHO. The key is made here, written to the agent's 0600 .env (never printed), and the
# gateway restarted to read it; the old key stops working once it is healthy again.
set -eu
umask 077
data=/srv/hermes/$AGENT/data
container=hermes-agent-$AGENT
[ -f "$data/.env" ] || { echo "agent $AGENT is not deployed on this host" >&2; exit 3; }
key=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
tmp=$(mktemp "$data/.env.XXXXXX")
grep -v '^API_SERVER_KEY=' "$data/.env" >"$tmp" || true
printf "API_SERVER_KEY='%s'\n" "$key" >>"$tmp"
chown 10000:10000 "$tmp"
chmod 600 "$tmp"
mv "$tmp" "$data/.env"
docker restart -t 60 "$container" >/dev/null
waited=0
until [ "$(docker container inspect -f '{{.State.Health.Status}}' "$container")" = healthy ]; do
    waited=$((waited + 1))
    [ "$waited" -le 180 ] || { echo "agent $AGENT did not become healthy within 180s after the new key" >&2; exit 3; }
    sleep 1
done
log=/var/log/hermes-infra
mkdir -p "$log"
printf '%s who="%s" agent=%s result=key-rotated\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$AUDIT_WHO" "$AGENT" >>"$log/audit.log"
chmod 600 "$log/audit.log"
