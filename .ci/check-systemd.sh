#!/usr/bin/env bash
# Checks the shipped systemd files:
#   - systemd/tokenwatch.sysusers creates the tokenwatch user as documented;
#   - the inotify system calls, and bind/listen/accept4 for the metrics
#     endpoint, survive the unit's SystemCallFilter=; AF_INET is allowed
#     and no IPAddressDeny= stops a 127.0.0.1 listener;
#   - `systemd-analyze verify` accepts systemd/tokenwatch.service, alone and
#     with the smtp-password drop-in, with no warning about them;
#   - `systemd-analyze security --offline=yes` rates the unit 1.1 or lower;
#   - the unit forbids core dumps (LimitCORE=0): they would hold secrets;
#   - the unit ends a crash loop (StartLimitIntervalSec=/StartLimitBurst= in
#     [Unit]) and never restarts after exit 3 (RestartPreventExitStatus=3).
#
# Usage: .ci/check-systemd.sh [PATH-TO-BUILT-BINARY]   (default target/debug/tokenwatch)
#
# Needs no running systemd (works in a container) and changes nothing on the
# host: everything happens in a temporary root passed as --root=, because
# `verify` insists that ExecStart=/usr/bin/tokenwatch and /bin/kill exist and
# that the unit's dependencies (sysinit.target...) can be loaded. Runs as any
# user; only when systemd-analyze is missing does it need root to install the
# `systemd` package (Debian).
set -euo pipefail

# Exposure is scored 0-100 internally and shown divided by 10: 20 means 2.0.
readonly MAX_EXPOSURE_X10=11

bin=${1:-target/debug/tokenwatch}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
unit_src=$repo/systemd/tokenwatch.service
sysusers_src=$repo/systemd/tokenwatch.sysusers
dropin_src=$repo/systemd/smtp-password.conf.example

fail() {
    echo "check-systemd: FAIL: $*" >&2
    exit 1
}

for f in "$unit_src" "$sysusers_src" "$dropin_src"; do
    [[ -f $f ]] || fail "$f is missing"
done
[[ -f $bin && -x $bin ]] ||
    fail "binary $bin is missing or not executable (build it first, or pass its path as \$1)"

if ! command -v systemd-analyze >/dev/null 2>&1; then
    # A fresh Debian container has no systemd; the package installs fine
    # without starting anything.
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        echo "check-systemd: systemd-analyze not found, installing the systemd package"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends systemd >/dev/null
    else
        fail "systemd-analyze not found: install the systemd package"
    fi
fi
echo "check-systemd: $(systemd-analyze --version | head -n 1)"

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT

# --- The temporary root -------------------------------------------------------
# verify resolves every path inside --root, and chases absolute symlinks
# inside it too, so the pieces are copied, not linked.
mkdir -p "$root/usr/bin" "$root/usr/lib/systemd" "$root/usr/lib/sysusers.d" \
    "$root/etc/systemd/system"
ln -s usr/bin "$root/bin"
host_units=
for d in /usr/lib/systemd/system /lib/systemd/system; do
    if [[ -d $d ]]; then
        host_units=$(readlink -f "$d")
        break
    fi
done
[[ -n $host_units ]] || fail "no systemd unit directory on this host (/usr/lib/systemd/system)"
# The host's units provide sysinit.target, network-online.target and the rest
# the unit depends on.
cp -a "$host_units" "$root/usr/lib/systemd/"
install -m 0755 "$bin" "$root/usr/bin/tokenwatch"
if [[ -x /bin/kill ]]; then
    cp /bin/kill "$root/usr/bin/kill"
else
    # procps (priority important) provides /bin/kill on every real Debian
    # system, but minimal containers lack it; verify only needs an executable.
    echo "check-systemd: note: /bin/kill not on this host; using a stand-in for ExecReload="
    printf '#!/bin/sh\nexit 0\n' >"$root/usr/bin/kill"
    chmod 0755 "$root/usr/bin/kill"
fi
install -m 0644 "$unit_src" "$root/etc/systemd/system/tokenwatch.service"

# --- Core dumps ---------------------------------------------------------------
# A watchdog SIGABRT must not write the SMTP password or a bearer to disk.
# The last LimitCORE= wins, so that is the one that must say 0.
limit_core=$(sed -n 's/^LimitCORE=[[:space:]]*//p' "$unit_src" | tail -n 1)
[[ $limit_core == 0 ]] ||
    fail "tokenwatch.service must set LimitCORE=0 (found '${limit_core:-nothing}')"
echo "check-systemd: core dumps off (LimitCORE=0)"
# --- restart policy -----------------------------------------------------------
# StartLimit* are ignored (with only a warning) in [Service] by newer systemd,
# so look for them in [Unit] itself.
# Each section is captured before grep reads it: `awk | grep -q` under
# pipefail fails at random, because grep -q exits at the first match and awk's
# next write of a section larger than its 4 KiB buffer dies of SIGPIPE.
unit_section() {
    awk -v want="[$1]" '/^\[/ { cur = $0; next } cur == want' "$unit_src"
}
unit_part=$(unit_section Unit)
service_part=$(unit_section Service)
for key in StartLimitIntervalSec StartLimitBurst; do
    grep -Eq "^$key=[^[:space:]]+" <<<"$unit_part" ||
        fail "tokenwatch.service has no $key= in [Unit]: a crash loop would never end"
done
grep -Eq '^RestartPreventExitStatus=.*\b3\b' <<<"$service_part" ||
    fail "tokenwatch.service lacks RestartPreventExitStatus=3: start-up errors a restart cannot fix would loop"
echo "check-systemd: restart policy ok (StartLimit* in [Unit], no restart after exit 3)"

# --- sysusers -----------------------------------------------------------------
install -m 0644 "$sysusers_src" "$root/usr/lib/sysusers.d/tokenwatch.conf"
if command -v systemd-sysusers >/dev/null 2>&1; then
    if ! out=$(systemd-sysusers --root="$root" 2>&1); then
        printf '%s\n' "$out" >&2
        fail "systemd-sysusers rejected systemd/tokenwatch.sysusers"
    fi
    entry=$(grep '^tokenwatch:' "$root/etc/passwd" || true)
    [[ $entry == tokenwatch:x:*:*:*:/var/lib/tokenwatch:/usr/sbin/nologin ]] ||
        fail "systemd/tokenwatch.sysusers made passwd entry '$entry'," \
            "expected user tokenwatch, home /var/lib/tokenwatch, shell /usr/sbin/nologin"
    grep -q '^tokenwatch:' "$root/etc/group" ||
        fail "systemd/tokenwatch.sysusers made no group tokenwatch"
    echo "check-systemd: sysusers ok: $entry"
else
    echo "check-systemd: note: systemd-sysusers not found; sysusers file not checked"
fi

# --- System call filter vs. the folder watcher --------------------------------
# The folder watcher needs the inotify calls; if a filter edit took them away,
# inotify_init1 would fail with EPERM and the daemon would silently degrade to
# periodic rescans. `syscall-filter @group` lists nested groups by name only
# (@system-service holds @file-system, which holds the inotify calls), so
# expand them; bare system call names stand for themselves.
expand_groups() {
    local item line
    for item in "$@"; do
        if [[ $item != @* ]]; then
            echo "$item"
            continue
        fi
        systemd-analyze syscall-filter "$item" 2>/dev/null | while read -r line; do
            case $line in
            '' | '#'* | "$item") ;; # blank, comment, or the group's own title
            @*) expand_groups "$line" ;;
            *) echo "$line" ;;
            esac
        done
    done
}
# Read the filter from the unit itself, so this check follows edits to it.
allow_groups=() deny_groups=()
while IFS= read -r value; do
    if [[ $value == '~'* ]]; then
        read -ra words <<<"${value#\~}"
        deny_groups+=("${words[@]}")
    else
        read -ra words <<<"$value"
        allow_groups+=("${words[@]}")
    fi
done < <(sed -n 's/^SystemCallFilter=//p' "$unit_src")
((${#allow_groups[@]} > 0)) || fail "tokenwatch.service has no SystemCallFilter= allow list"
allowed=$(expand_groups "${allow_groups[@]}" | sort -u)
denied=
if ((${#deny_groups[@]} > 0)); then
    denied=$(expand_groups "${deny_groups[@]}" | sort -u)
fi
[[ -n $allowed ]] || fail "systemd-analyze syscall-filter listed nothing for ${allow_groups[*]}"
# The metrics endpoint ([metrics] listen) binds, listens and accepts.
for call in inotify_init1 inotify_add_watch inotify_rm_watch bind listen accept4; do
    grep -qx "$call" <<<"$allowed" || fail "$call is not allowed by SystemCallFilter=${allow_groups[*]}"
    if grep -qx "$call" <<<"$denied"; then
        fail "$call is denied by SystemCallFilter=~${deny_groups[*]}"
    fi
done
echo "check-systemd: syscall filter keeps inotify_init1, inotify_add_watch, inotify_rm_watch, bind, listen, accept4"
# A metrics endpoint on 127.0.0.1 needs AF_INET, and no IP deny list that
# leaves out localhost.
families=$(sed -n 's/^RestrictAddressFamilies=//p' "$unit_src" | tail -n 1)
[[ " $families " == *" AF_INET "* ]] ||
    fail "RestrictAddressFamilies=$families leaves out AF_INET: [metrics] listen cannot work"
if grep -q '^IPAddressDeny=' "$unit_src" && ! grep -Eq '^IPAddressAllow=.*(localhost|127\.0\.0\.1)' "$unit_src"; then
    fail "IPAddressDeny= without IPAddressAllow=localhost: [metrics] listen on 127.0.0.1 cannot be reached"
fi
echo "check-systemd: a [metrics] listener on 127.0.0.1 is allowed (RestrictAddressFamilies=$families)"

# --- verify -------------------------------------------------------------------
# verify exits 0 on unknown keys and unparsable values (it only logs
# "ignoring"), so any message about our unit is a failure too.
verify() {
    local what=$1 out
    # --man=no: the man page of Documentation= is not in this root; the
    # package checks (.ci/deb.sh) install and render it.
    if ! out=$(systemd-analyze verify --man=no --root="$root" tokenwatch.service 2>&1); then
        printf '%s\n' "$out" >&2
        fail "systemd-analyze verify failed for $what"
    fi
    if grep -q 'tokenwatch' <<<"$out"; then
        printf '%s\n' "$out" >&2
        fail "systemd-analyze verify warned about $what"
    fi
    if [[ -n $out ]]; then
        # Messages about the host's own units are not ours to fix; show them.
        printf 'check-systemd: verify note: %s\n' "$out"
    fi
    echo "check-systemd: verify ok: $what"
}
verify "tokenwatch.service"

# --- security -----------------------------------------------------------------
# Scored on the unit as shipped, before the drop-in below is added.
if ! report=$(systemd-analyze security --offline=yes --threshold="$MAX_EXPOSURE_X10" \
    --root="$root" --no-pager tokenwatch.service 2>&1); then
    printf '%s\n' "$report" >&2
    overall=$(grep 'Overall exposure level' <<<"$report" || true)
    fail "exposure above $((MAX_EXPOSURE_X10 / 10)).$((MAX_EXPOSURE_X10 % 10))" \
        "or systemd-analyze security failed: ${overall:-no score}"
fi
overall=$(grep 'Overall exposure level' <<<"$report" || true)
[[ -n $overall ]] || {
    printf '%s\n' "$report" >&2
    fail "systemd-analyze security printed no overall exposure"
}
# Everything the analyzer still counts against the unit (the lines that end in
# an exposure value; the marks differ between UTF-8 and C locales), then the score.
grep -E ' [0-9]+\.[0-9]+$' <<<"$report" || true
echo "check-systemd: security ok: Overall${overall#*Overall}"

# --- verify with the credential drop-in ---------------------------------------
mkdir -p "$root/etc/systemd/system/tokenwatch.service.d"
install -m 0644 "$dropin_src" "$root/etc/systemd/system/tokenwatch.service.d/smtp-password.conf"
verify "tokenwatch.service with the smtp-password.conf drop-in"

echo "check-systemd: all systemd checks passed"
