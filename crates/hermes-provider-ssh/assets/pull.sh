# hermes-infra pull script: images from the stack's registry into this host's Docker engine.
# Runs as root. Set before this text: SERVER (host:port), USERNAME (empty: no login), REFS
# (references, space separated). Reads a tar stream on stdin: password (when USERNAME is set)
# and ca.crt (when the registry's certificate needs a CA of its own; it goes to
# /etc/docker/certs.d/$SERVER/). The login is kept in /etc/hermes-infra/registry (root only).
# A reference pinned by digest is pulled only when missing; a tag is pulled every time (it may
# have moved). Prints `REF ID` a line.
set -eu
umask 077
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
tar -x -o -C "$stage" -f -
config=/etc/hermes-infra/registry
install -d -m 700 "$config"
if [ -s "$stage/ca.crt" ]; then
    install -d -m 755 /etc/docker/certs.d "/etc/docker/certs.d/$SERVER"
    install -m 644 "$stage/ca.crt" "/etc/docker/certs.d/$SERVER/ca.crt"
fi
if [ -n "$USERNAME" ]; then
    docker --config "$config" login "$SERVER" --username "$USERNAME" --password-stdin \
        <"$stage/password" >/dev/null 2>"$stage/login.err" ||
        { cat "$stage/login.err" >&2; echo "cannot log in to registry $SERVER as $USERNAME" >&2; exit 3; }
fi
for ref in $REFS; do
    case "$ref" in
        *@sha256:*) docker image inspect "$ref" >/dev/null 2>&1 || need=yes ;;
        *) need=yes ;;
    esac
    if [ "${need:-}" = yes ]; then
        docker --config "$config" pull -q "$ref" >/dev/null 2>"$stage/pull.err" ||
            { cat "$stage/pull.err" >&2; echo "cannot pull $ref from registry $SERVER" >&2; exit 3; }
    fi
    need=
    printf '%s %s\n' "$ref" "$(docker image inspect -f '{{.Id}}' "$ref")"
done
