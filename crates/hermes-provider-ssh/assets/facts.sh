# hermes-infra facts: one round trip, one JSON line on stdout. Runs as root; reads only.
# $1: the SSH client line of the admin connection ("ADDRESS PORT LOCALPORT"), read before sudo.
# Every no-op apply runs this on every host: it starts as few processes as it can (systemctl,
# nft, sha256sum, awk; the rest is the shell's own).
set -u
client=${1:-}
state=/etc/hermes-infra/manifest.d
# systemd writes /run/systemd/container when it boots in one: read it without a process; only a
# host without it asks systemd-detect-virt.
virt=
if [ -r /run/systemd/container ]; then
    read -r virt </run/systemd/container || true
else
    virt=$(systemd-detect-virt --container 2>/dev/null || true)
fi
[ -n "$virt" ] || virt=none
# One systemctl call for every unit (a line each, in order).
states=$(systemctl is-active ssh fail2ban nftables docker nginx 2>/dev/null)
firewall=missing
if command -v nft >/dev/null 2>&1 && nft list table inet hermes-infra >/dev/null 2>&1; then
    firewall=loaded
fi
# Agents: their manifests (found by the shell's glob), and only where there are some, their
# containers and the host's image ids (one docker call each).
agent_files=
for f in /etc/hermes-infra/agents/*.json; do
    [ -f "$f" ] && agent_files="$agent_files $f"
done
containers=
images=
if [ -n "$agent_files" ]; then
    containers=$(docker ps -a --no-trunc --filter label=hermes-infra/role=agent \
        --format '{{.Names}}|{{.Image}}|{{.State}}|{{.Status}};' 2>/dev/null || true)
    images=$(docker image ls --no-trunc --format '{{.Repository}}:{{.Tag}}|{{.ID}};' 2>/dev/null || true)
fi
# The managed files of every phase, read with the shell's `read` (hermes-infra's own paths, one
# per line, without spaces), digested by one sha256sum; a missing file is left out (it reads as
# missing).
set --
for phase in host-hardening docker-engine reverse-proxy; do
    [ -f "$state/$phase.files" ] || continue
    while read -r path; do
        [ -n "$path" ] && set -- "$@" "$path"
    done <"$state/$phase.files"
done
digests=
if [ "$#" -gt 0 ]; then
    digests=$(sha256sum "$@" 2>/dev/null)
fi
# One awk writes the JSON: each phase's manifest as a string (it is parsed by hermes-infra, so a
# hand-broken manifest reads as unreadable, not as broken facts) and its files' digests.
printf '%s\n' "$digests" | awk -v state="$state" -v virt="$virt" -v client="${client%% *}" \
    -v firewall="$firewall" -v states="$states" -v agent_files="$agent_files" \
    -v containers="$containers" -v images="$images" '
    function esc(s) {
        gsub(/\\/, "&&", s)
        gsub(/"/, "\\\"", s)
        gsub(control, " ", s)
        return s
    }
    BEGIN { control = sprintf("[%c-%c]", 1, 31) }
    NF == 2 { digest[$2] = $1 }
    END {
        split(states, s, "\n")
        printf "{\"v\":2,\"container\":\"%s\",\"admin_source\":\"%s\",\"firewall\":\"%s\"", esc(virt), esc(client), firewall
        printf ",\"services\":{\"ssh\":\"%s\",\"fail2ban\":\"%s\",\"nftables\":\"%s\",\"docker\":\"%s\",\"nginx\":\"%s\"}", \
            esc(s[1] == "" ? "unknown" : s[1]), esc(s[2] == "" ? "unknown" : s[2]), \
            esc(s[3] == "" ? "unknown" : s[3]), esc(s[4] == "" ? "unknown" : s[4]), \
            esc(s[5] == "" ? "unknown" : s[5])
        printf ",\"phases\":{"
        n = split("host-hardening docker-engine reverse-proxy", phases, " ")
        sep = ""
        for (i = 1; i <= n; i++) {
            manifest = state "/" phases[i] ".json"
            # getline: -1 when the file does not exist (the phase never ran), 0 at its end.
            read = (getline line < manifest)
            if (read < 0) continue
            text = ""
            for (first = 1; read > 0; first = 0) {
                text = text (first ? "" : " ") line
                read = (getline line < manifest)
            }
            close(manifest)
            printf "%s\"%s\":{\"manifest\":\"%s\",\"files\":{", sep, phases[i], esc(text)
            sep = ","
            fsep = ""
            list = state "/" phases[i] ".files"
            while ((getline path < list) > 0) {
                if (path in digest) {
                    printf "%s\"%s\":\"sha256:%s\"", fsep, esc(path), digest[path]
                    fsep = ","
                }
            }
            close(list)
            printf "}}"
        }
        printf "},\"agents\":{"
        n = split(agent_files, files, " ")
        sep = ""
        for (i = 1; i <= n; i++) {
            text = ""
            for (first = 1; (getline line < files[i]) > 0; first = 0) {
                text = text (first ? "" : " ") line
            }
            close(files[i])
            name = files[i]
            sub(/.*\//, "", name)
            sub(/\.json$/, "", name)
            printf "%s\"%s\":\"%s\"", sep, esc(name), esc(text)
            sep = ","
        }
        printf "},\"containers\":\"%s\",\"images\":\"%s\"}\n", esc(containers), esc(images)
    }'
