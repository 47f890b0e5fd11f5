# hermes-infra agent files: how root reaches into an agent's data directory (the head of the
# agent and rotate scripts; runs as root). Set before this text: AGENT.
# An agent owns its data directory, so any name in it may be a link, a FIFO or a device that
# the agent planted. Root never opens such a path: every read and write there runs as the
# data's owner (setpriv: that UID and GID alone, no supplementary group, no capability, no new
# privileges), reads refuse to follow a link (`dd iflag=nofollow`), and writes go to a new file
# that is renamed over the name (`mv -T` replaces a link, never what it points to). What is
# not a regular file is refused before anything changes, with the path and the fix.
home=/srv/hermes/$AGENT
data=$home/data
uids=/etc/hermes-infra/agents/uids

# agent_uid: prints this agent's own UID (its GID is the same number), allocated on its first
# deploy and kept for good: above 10000 (the image's own user, 10000, is nobody's), unused by
# any other agent and by this host's users and groups.
agent_uid() {
    mkdir -p "${uids%/*}"
    (
        flock -w 60 9 || fail "agent $AGENT: the UID table $uids stayed locked for 60 s"
        touch "$uids"
        chmod 644 "$uids"
        found=$(awk -v a="$AGENT" '$1 == a { print $2; exit }' "$uids")
        if [ -z "$found" ]; then
            found=10001
            while awk -v u="$found" '$2 == u { f = 1 } END { exit !f }' "$uids" ||
                getent passwd "$found" >/dev/null || getent group "$found" >/dev/null; do
                found=$((found + 1))
            done
            printf '%s %s\n' "$AGENT" "$found" >>"$uids"
        fi
        printf '%s\n' "$found"
    ) 9>>"$uids.lock"
}

# as_user UID COMMAND...: the command as UID:UID, without any privilege.
as_user() {
    never_root "$1"
    u=$1
    shift
    setpriv --reuid="$u" --regid="$u" --clear-groups --inh-caps=-all --no-new-privs -- "$@"
}

# never_root UID: stops unless UID is a user's number other than root's.
never_root() {
    case "$1" in '' | 0 | *[!0-9]*)
        fail "agent $AGENT: refusing to act as user '$1' in its data directory"
        ;;
    esac
}

# refuse NAME WHY: stops with the path, the path in the container, and the fix.
refuse() {
    fail "agent $AGENT: $data/$1 ($2) $3; nothing was changed. It is the agent's own file: \
remove it with \`hermes-infra exec <stack file> $AGENT -- rm /opt/data/$1\` (or as root on the host, \
\`rm $data/$1\`), then apply again."
}

# check_file UID NAME: NAME in the data directory is absent, or a regular file that UID can
# read; refused otherwise (looked at as UID: root does not follow the name).
check_file() {
    never_root "$1"
    kind=$(as_user "$1" sh -c '
        f=$1
        if [ -L "$f" ]; then echo link
        elif [ ! -e "$f" ]; then echo absent
        elif [ ! -f "$f" ]; then echo special
        elif [ ! -r "$f" ]; then echo unreadable
        else echo file
        fi' sh "$data/$2") || kind=unreadable
    case "$kind" in
        absent | file) ;;
        link) refuse "$2" "/opt/data/$2 in the container" "is a symbolic link, not a regular file" ;;
        special) refuse "$2" "/opt/data/$2 in the container" "is not a regular file (a FIFO, socket or device)" ;;
        *) refuse "$2" "/opt/data/$2 in the container" "cannot be read by the agent's own user (UID $1)" ;;
    esac
    [ "$kind" = file ]
}

# read_file UID NAME: NAME's bytes on stdout, read as UID without following a link and without
# waiting on a FIFO; nothing when it is absent (check it first).
read_file() {
    never_root "$1"
    as_user "$1" dd if="$data/$2" iflag=nofollow,nonblock status=none 2>/dev/null || true
}

# write_file UID NAME MODE: stdin becomes NAME (UID's, MODE), by a rename of a new file.
write_file() {
    as_user "$1" sh -c '
        umask 077
        t=$(mktemp "$1/.hermes-infra.XXXXXX") || exit 1
        if cat >"$t" && chmod "$3" "$t" && mv -fT "$t" "$1/$2"; then exit 0; fi
        rm -f "$t"
        exit 1' sh "$data" "$2" "$3" ||
        fail "agent $AGENT: cannot write $data/$2 as the agent's user (UID $1)"
}
