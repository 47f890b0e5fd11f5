# hermes-infra: a fresh login worked after the sshd or firewall change; keep it. Runs as root.
# Set before this text: PHASE, AUDIT_WHO, AUDIT_PLAN.
set -eu
state=/var/lib/hermes-infra
stage=$state/stage/$PHASE
systemctl stop "hermes-infra-revert-$PHASE.timer" >/dev/null 2>&1 || true
rm -rf "$state/backup/$PHASE" "$state/revert-$PHASE.sh"
install -m 600 "$stage/manifest.json" "/etc/hermes-infra/manifest.d/$PHASE.json"
install -m 600 "$stage/manifest.files" "/etc/hermes-infra/manifest.d/$PHASE.files"
rm -rf "$stage"
printf '%s who="%s" plan=%s phase=%s result=ok\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    "$AUDIT_WHO" "$AUDIT_PLAN" "$PHASE" >>/var/log/hermes-infra/audit.log
