# hermes-infra phase script: puts one phase's files in place, idempotently. Runs as root.
# Set before this text: PHASE, PACKAGES, REVERT_AFTER (seconds), AUDIT_WHO, AUDIT_PLAN,
# ADMIN_USER, ADMIN_GROUP (empty for phases that do not manage the admin), ENSURE_RUNNING
# (services that must be running), ENSURE_FIREWALL (yes: our nftables table must be loaded),
# SSH_PORT.
# Reads a tar stream on stdin: files/<absolute path>, files.list ("MODE RELOAD PATH" lines),
# manifest.json, manifest.files. Prints one JSON line: what changed and whether the caller
# must test a fresh login and confirm (sshd or firewall changed), or the change is final.
set -eu
umask 022
state=/var/lib/hermes-infra
stage=$state/stage/$PHASE
backup=$state/backup/$PHASE
revert=$state/revert-$PHASE.sh
unit=hermes-infra-revert-$PHASE
log=/var/log/hermes-infra
mkdir -p "$state" /etc/hermes-infra/manifest.d "$log"
chmod 700 "$state" "$log"
rm -rf "$stage"
mkdir -p "$stage"
tar -x -o -C "$stage" -f -

audit() {
    printf '%s who="%s" plan=%s phase=%s result=%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
        "$AUDIT_WHO" "$AUDIT_PLAN" "$PHASE" "$1" >>"$log/audit.log"
    chmod 600 "$log/audit.log"
}
fail() {
    audit "failed"
    echo "$*" >&2
    exit 3
}

# A previous run that was neither confirmed nor reverted: revert it first.
if [ -f "$revert" ]; then
    systemctl stop "$unit.timer" >/dev/null 2>&1 || true
    sh "$revert" || true
fi

# Which files differ from what is on the host.
changed=""
reloads=""
while read -r mode reload path; do
    new="$stage/files$path"
    if [ -f "$path" ] && cmp -s "$new" "$path" && [ "$(stat -c %a "$path")" = "$mode" ]; then
        continue
    fi
    changed="$changed $path"
    case " $reloads " in *" $reload "*) ;; *) reloads="$reloads $reload" ;; esac
done <"$stage/files.list"
has() { case " $reloads " in *" $1 "*) return 0 ;; esac; return 1; }

# The admin may log in only as a member of the SSH group; exempt from password ageing.
if [ -n "$ADMIN_GROUP" ]; then
    getent group "$ADMIN_GROUP" >/dev/null || groupadd --system "$ADMIN_GROUP"
    id -nG "$ADMIN_USER" | tr ' ' '\n' | grep -qx "$ADMIN_GROUP" || usermod -a -G "$ADMIN_GROUP" "$ADMIN_USER"
fi

put() { # put PATH MODE: install the staged file
    mkdir -p "$(dirname "$1")"
    install -m "$2" -o root -g root "$stage/files$1" "$1.hermes-new"
    mv -f "$1.hermes-new" "$1"
}

# Lockout-safe files (sshd, firewall) go in last, under a revert timer; the others now, before
# packages are installed, so that a package never starts with its default settings.
lockout=no
while read -r mode reload path; do
    case " $changed " in *" $path "*) ;; *) continue ;; esac
    case "$reload" in
        sshd | firewall) lockout=yes ;;
        sudoers)
            visudo -cqf "$stage/files$path" >/dev/null || fail "$path: visudo refused the new sudoers file; nothing was changed"
            put "$path" "$mode"
            ;;
        *) put "$path" "$mode" ;;
    esac
done <"$stage/files.list"

if has systemd-unit; then
    systemctl daemon-reload
fi
# The proxy's certificates exist before nginx is installed (it may start on install).
if has certificates; then
    /usr/lib/hermes-infra/proxy-certs || fail "the proxy's certificates could not be made"
fi

# Debian's nginx starts as soon as it is installed, with its default site (port 80) and welcome
# page: a policy-rc.d of ours (only where the host has none; marked, so that a run cut off
# during the install has it removed by the next) keeps it stopped until both are gone and our
# configuration has passed nginx -t below.
norc=/usr/sbin/policy-rc.d
norc_mark="# hermes-infra: no service starts during this install"
if grep -qxF "$norc_mark" "$norc" 2>/dev/null; then
    rm -f "$norc"
fi
missing=""
for p in $PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    export DEBIAN_FRONTEND=noninteractive
    case " $missing " in
        *" nginx "*)
            if [ ! -e "$norc" ]; then
                trap 'rm -f "$norc"' EXIT
                printf '#!/bin/sh\n%s\nexit 101\n' "$norc_mark" >"$norc"
                chmod 755 "$norc"
            fi
            ;;
    esac
    # Wait (at most 5 minutes) for another apt run, such as a fresh host's apt-daily timer.
    apt-get update -qq -o DPkg::Lock::Timeout=300 >"$state/apt.log" 2>&1 || { tail -n 20 "$state/apt.log" >&2; fail "apt-get update failed"; }
    apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=300 -o Dpkg::Options::=--force-confdef \
        -o Dpkg::Options::=--force-confold $missing >>"$state/apt.log" 2>&1 ||
        { tail -n 20 "$state/apt.log" >&2; fail "installing$missing failed"; }
    case " $missing " in
        *" nginx "*) rm -f /etc/nginx/sites-enabled/default /var/www/html/index.nginx-debian.html ;;
    esac
    if grep -qxF "$norc_mark" "$norc" 2>/dev/null; then
        rm -f "$norc"
        trap - EXIT
    fi
fi

if [ "$lockout" = yes ]; then
    # Back up what is replaced; the revert script puts it back and reloads.
    rm -rf "$backup"
    mkdir -p "$backup"
    {
        echo "# hermes-infra: undo the $PHASE change of plan $AUDIT_PLAN"
        echo "set +e"
    } >"$revert"
    while read -r mode reload path; do
        case " $changed " in *" $path "*) ;; *) continue ;; esac
        case "$reload" in sshd | firewall) ;; *) continue ;; esac
        if [ -f "$path" ]; then
            mkdir -p "$backup$(dirname "$path")"
            cp -p "$path" "$backup$path"
            echo "cp -p '$backup$path' '$path'" >>"$revert"
        else
            echo "rm -f '$path'" >>"$revert"
        fi
    done <"$stage/files.list"
    cat >>"$revert" <<'REVERT'
if [ -f /etc/nftables.conf ] && grep -q 'hermes-infra' /etc/nftables.conf; then
    nft -f /etc/nftables.conf
else
    nft delete table inet hermes-infra 2>/dev/null
fi
systemctl reload ssh 2>/dev/null || systemctl restart ssh
REVERT
    echo "rm -rf '$backup' '$revert'" >>"$revert"
    # AUDIT_WHO holds no quote (an actor is letters, digits and ._@+-): safe between '...'.
    echo "printf '%s who=\"%s\" plan=%s phase=%s result=reverted\n' \"\$(date -u +%Y-%m-%dT%H:%M:%SZ)\" '$AUDIT_WHO' '$AUDIT_PLAN' '$PHASE' >>'$log/audit.log'" >>"$revert"
    systemctl stop "$unit.timer" >/dev/null 2>&1 || true
    systemctl reset-failed "$unit.service" "$unit.timer" >/dev/null 2>&1 || true
    systemd-run --quiet --unit="$unit" --on-active="$REVERT_AFTER" /bin/sh "$revert" >/dev/null
    while read -r mode reload path; do
        case " $changed " in *" $path "*) ;; *) continue ;; esac
        case "$reload" in sshd | firewall) put "$path" "$mode" ;; esac
    done <"$stage/files.list"
    if has sshd && ! err=$(sshd -t 2>&1); then
        systemctl stop "$unit.timer" >/dev/null 2>&1 || true
        sh "$revert" >/dev/null 2>&1
        fail "sshd -t refused the new SSH configuration, which was put back: $err"
    fi
    if has firewall && ! err=$(nft -c -f /etc/nftables.conf 2>&1); then
        systemctl stop "$unit.timer" >/dev/null 2>&1 || true
        sh "$revert" >/dev/null 2>&1
        fail "nft -c refused the new firewall, which was put back: $err"
    fi
    if has firewall; then
        nft -f /etc/nftables.conf || { systemctl stop "$unit.timer"; sh "$revert"; fail "nft could not load the new firewall, which was put back"; }
    fi
    if has sshd; then
        systemctl reload ssh || { systemctl stop "$unit.timer"; sh "$revert"; fail "sshd did not reload; the old configuration was put back"; }
        # sshd re-executes itself on reload: wait (at most 10 s) until it listens again, so that
        # the caller's fresh-login test meets the new sshd, not a closed port.
        tries=0
        until ss -Htln "sport = :$SSH_PORT" | grep -q .; do
            tries=$((tries + 1))
            [ "$tries" -le 100 ] || break
            sleep 0.1
        done
    fi
fi

if has sysctl; then
    # procps' sysctl exits 0 when a key cannot be written: any message is a failure. (-e: a
    # key this kernel does not have, such as IPv6 ones on a host without IPv6, is skipped.)
    sysctl -e -q -p /etc/sysctl.d/90-hermes.conf >/dev/null 2>"$state/sysctl.log" || true
    if [ -s "$state/sysctl.log" ]; then
        cat "$state/sysctl.log" >&2
        fail "sysctl could not apply /etc/sysctl.d/90-hermes.conf"
    fi
fi
if has login-defs; then
    sed -i -E -f /etc/hermes-infra/login.defs.sed /etc/login.defs
fi
if [ -n "$ADMIN_GROUP" ]; then
    # The admin logs in with keys only: an expired (or ageing) password must never block it.
    chage -M -1 -m 0 "$ADMIN_USER"
    # Keep the admin's systemd user manager running: otherwise every login after 10 s without
    # one starts it again (about 200 ms of CPU and 300 ms of wall time on a small host), and
    # hermes-infra's own logins are short and far apart.
    if [ ! -e "/var/lib/systemd/linger/$ADMIN_USER" ]; then
        loginctl enable-linger "$ADMIN_USER" || fail "loginctl enable-linger $ADMIN_USER failed"
    fi
fi
if has fail2ban; then
    fail2ban-client -t >"$state/fail2ban.log" 2>&1 || { tail -n 20 "$state/fail2ban.log" >&2; fail "fail2ban-client -t refused the new jails"; }
    systemctl enable fail2ban >/dev/null 2>&1 || true
    systemctl restart fail2ban || fail "fail2ban did not restart"
fi
if has docker; then
    systemctl enable docker >/dev/null 2>&1 || true
    systemctl restart docker || fail "dockerd did not restart with the new /etc/docker/daemon.json (see journalctl -u docker)"
fi
if has nginx; then
    # Debian's default site (port 80, a welcome page), made when nginx is first installed, is
    # not ours to serve (nor is the page, which nginx-common puts back on an upgrade).
    rm -f /etc/nginx/sites-enabled/default /var/www/html/index.nginx-debian.html
    nginx -t >"$state/nginx.log" 2>&1 || { tail -n 20 "$state/nginx.log" >&2; fail "nginx -t refused the new configuration"; }
    systemctl enable nginx >/dev/null 2>&1 || true
    systemctl reload-or-restart nginx || fail "nginx did not reload"
fi
for service in $ENSURE_RUNNING; do
    systemctl is-active --quiet "$service" || systemctl start "$service" || fail "$service does not start"
done
# Certificates from an ACME directory (the script is a no-op without ACME): asked for once
# nginx serves the challenges; until issued, the local CA's stand in.
if [ "$PHASE" = reverse-proxy ] && [ -x /usr/lib/hermes-infra/proxy-acme ]; then
    /usr/lib/hermes-infra/proxy-acme || fail "certificates from the ACME directory could not be had"
fi

if [ "$ENSURE_FIREWALL" = yes ]; then
    if ! nft list table inet hermes-infra >/dev/null 2>&1; then
        nft -f /etc/nftables.conf || fail "nft could not load /etc/nftables.conf"
    fi
    # Loads the ruleset at boot; its stop (our drop-in) removes only our table.
    systemctl is-enabled --quiet nftables || systemctl enable --quiet nftables
    systemctl is-active --quiet nftables || systemctl start nftables || fail "nftables.service does not start"
fi

finish() {
    install -m 600 "$stage/manifest.json" "/etc/hermes-infra/manifest.d/$PHASE.json"
    install -m 600 "$stage/manifest.files" "/etc/hermes-infra/manifest.d/$PHASE.files"
    audit "ok"
}
if [ "$lockout" = no ]; then
    finish
    rm -rf "$stage"
fi
printf '{"changed":['
sep=""
for path in $changed; do printf '%s"%s"' "$sep" "$path"; sep=","; done
printf '],"confirm":%s}\n' "$([ "$lockout" = yes ] && echo true || echo false)"
