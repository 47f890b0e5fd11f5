# hermes-infra facts: one round trip, one JSON line on stdout. Runs as root; reads only.
# $1: the SSH client line of the admin connection ("ADDRESS PORT LOCALPORT"), read before sudo.
set -u
client=${1:-}
state=/etc/hermes-infra/manifest.d
virt=$(systemd-detect-virt --container 2>/dev/null || true)
[ -n "$virt" ] || virt=none
# One systemctl call for every unit (a line each, in order).
states=$(systemctl is-active ssh fail2ban nftables docker 2>/dev/null | tr '\n' ' ')
set -- $states
firewall=missing
if command -v nft >/dev/null 2>&1 && nft list table inet hermes-infra >/dev/null 2>&1; then
    firewall=loaded
fi
printf '{"v":1,"container":"%s","admin_source":"%s","firewall":"%s"' "$virt" "${client%% *}" "$firewall"
printf ',"services":{"ssh":"%s","fail2ban":"%s","nftables":"%s","docker":"%s"}' \
    "${1:-unknown}" "${2:-unknown}" "${3:-unknown}" "${4:-unknown}"
printf ',"phases":{'
sep=""
for phase in host-hardening docker-engine; do
    [ -f "$state/$phase.json" ] || continue
    printf '%s"%s":{"manifest":"%s","files":{' "$sep" "$phase" "$(base64 -w0 <"$state/$phase.json")"
    # One sha256sum for every file (paths are hermes-infra's own, without spaces); a missing
    # file is left out, which reads as missing.
    if [ -s "$state/$phase.files" ]; then
        # shellcheck disable=SC2046
        sha256sum $(cat "$state/$phase.files") 2>/dev/null |
            awk 'NF == 2 { printf "%s\"%s\":\"sha256:%s\"", sep, $2, $1; sep = "," }'
    fi
    printf '}}'
    sep=","
done
printf '}}\n'
