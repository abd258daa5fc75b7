#!/usr/bin/env bash
# tokenwatch under a real systemd. Boots systemd as PID 1 in new PID, mount,
# network, UTS and IPC namespaces, installs the package there (or the unit
# by hand when there is no package), and checks with systemctl:
#   - installed enabled, not started; `systemctl start` returns only after
#     READY=1 (the daemon's first scan is logged before systemd's "Started");
#   - the STATUS= text systemd shows, and that it follows the credentials;
#   - a token dropped into a folder produces its mail (file transport);
#   - `systemctl reload` with a broken config keeps the service active on the
#     previous config, and `tokenwatch status` shows the errors;
#   - `systemd-analyze security` of the running unit is at most 1.1;
#   - a package upgrade restarts the running service;
#   - `systemctl stop` ends it cleanly (exit 0, result success);
#   - a daemon stuck on purpose is killed by the watchdog and restarted;
#   - an invalid config at start ends in `failed` (exit 3), with no restart.
#
# Usage: .ci/systemd-e2e.sh   (as root; run .ci/deb.sh first for the package)
#
# Environment:
#   TOKENWATCH_SYSTEMD_STRICT=1  fail when systemd cannot be booted here
#                                (default: say why and exit 0)
#   TOKENWATCH_DEBUG_BIN         debug build for the watchdog check (default
#                                target/debug/tokenwatch, or under
#                                CARGO_TARGET_DIR)
#
# Isolation. systemd as PID 1 owns everything it can see, so it sees little:
#   - /tmp, /var/tmp, /run and /var/log/journal are fresh tmpfs in its mount
#     namespace before it starts: systemd-tmpfiles would otherwise empty the
#     host's /tmp, and its journal would land on the host's disk;
#   - it boots an empty target (tokenwatch-e2e.target) instead of
#     default.target, so none of the host's services start in it;
#   - tokenwatch.service gets DefaultDependencies=no in a drop-in under the
#     namespace's /run: otherwise starting it would pull in sysinit.target,
#     whose units act on the whole machine (sysctl, udev trigger, kernel
#     modules, binfmt, the clock), not on the namespace. network-online.target
#     is masked there too (it could pull in ifup), and the network namespace
#     is new anyway. The drop-in changes ordering only: the unit's sandbox and
#     its `systemd-analyze security` score are the shipped ones;
#   - it is stopped with SIGKILL from outside, never by its own shutdown,
#     which would try to remount file systems read-only.
# What it leaves on the host while it runs: the package's files (purged at
# the end), /srv/tokenwatch-e2e (removed), cgroup folders (removed).
set -Eeuo pipefail
shopt -s nullglob
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export DEBIAN_FRONTEND=noninteractive

readonly STRICT=${TOKENWATCH_SYSTEMD_STRICT:-0}
readonly TARGET=${CARGO_TARGET_DIR:-target}
readonly DEBUG_BIN=${TOKENWATCH_DEBUG_BIN:-$TARGET/debug/tokenwatch}
readonly MAX_EXPOSURE=1.1
readonly E2E=/srv/tokenwatch-e2e
readonly TOKENS=$E2E/tokens
readonly CONF=/etc/tokenwatch/tokenwatch.toml
readonly STATE=/var/lib/tokenwatch
readonly MAIL=$STATE/mail
readonly UNIT=tokenwatch.service

say() { printf 'systemd-e2e: %s\n' "$*"; }
STEP_PREFIX=systemd-e2e
# shellcheck source=.ci/steps.sh
source .ci/steps.sh  # the script has cd-ed to the checkout

# Where systemd cannot boot, the test cannot run: say so; strict CI fails.
cannot() {
    say "NOT RUN: $*"
    if [[ $STRICT == 1 ]]; then
        say "FAIL: TOKENWATCH_SYSTEMD_STRICT=1 and systemd cannot be booted here"
        exit 1
    fi
    exit 0
}

sd_pid=
unshare_pid=
work=
package=
by_hand=0
tw_is_debug=0
cgroups_before=

ns() { nsenter -t "$sd_pid" -m -p -n -u -i -- "$@"; }
show() { ns systemctl show -p "$1" --value "$UNIT"; }

diagnose() {
    [[ -n $sd_pid ]] || return 0
    say "--- systemctl status $UNIT"
    ns systemctl status --no-pager -l "$UNIT" 2>&1 || true
    say "--- journal of $UNIT (last 80 lines)"
    ns journalctl --no-pager -u "$UNIT" -n 80 -o short-monotonic 2>&1 || true
    say "--- systemd's own output"
    tail -n 40 "$work/boot.log" 2>/dev/null || true
}

fail() {
    trap - ERR
    say "FAIL: $*" >&2
    diagnose
    exit 1
}

# A command that fails outside a check still fails the test, with its line.
on_error() {
    trap - ERR
    say "FAIL: line $1: $2" >&2
    diagnose
}
trap 'on_error $LINENO "$BASH_COMMAND"' ERR

cgroup_dirs() {
    local d n
    for d in /sys/fs/cgroup /sys/fs/cgroup/*/; do
        for n in init.scope system.slice; do
            [[ -d ${d%/}/$n ]] && echo "${d%/}/$n"
        done
    done
    return 0
}

cleanup() {
    local rc=$?
    trap - ERR
    set +e
    step_done
    if [[ -n $sd_pid ]]; then
        if [[ -n $package ]]; then
            ns dpkg -P tokenwatch >/dev/null
        fi
        kill -KILL "$sd_pid" 2>/dev/null
        wait "$unshare_pid" 2>/dev/null
        # The namespace's systemd made cgroups in the host's hierarchies;
        # with every process in them gone, they can be removed.
        local d
        while read -r d; do
            grep -qxF "$d" <<<"$cgroups_before" || find "$d" -depth -type d -exec rmdir {} + 2>/dev/null
        done < <(cgroup_dirs)
    fi
    if [[ $by_hand == 1 ]]; then
        rm -f /usr/bin/tokenwatch /etc/systemd/system/tokenwatch.service \
            /usr/lib/sysusers.d/tokenwatch.conf
        rm -rf /etc/tokenwatch "$STATE"
    fi
    rm -rf "$E2E" /usr/local/lib/tokenwatch-e2e
    [[ -n $work ]] && rm -rf "$work"
    exit "$rc"
}
trap cleanup EXIT

# Polls a command until it succeeds, for at most $1 seconds.
wait_for() {
    local secs=$1 what=$2
    shift 2
    local end=$((SECONDS + secs))
    until "$@"; do
        # The state then is in the diagnosis that fail prints.
        ((SECONDS < end)) || fail "after ${secs} s: $what"
        sleep 0.2
    done
}

# --- boot -------------------------------------------------------------------
step "boot systemd in new namespaces"
[[ $(id -u) -eq 0 ]] || cannot "needs root"
[[ -x /lib/systemd/systemd ]] || cannot "no /lib/systemd/systemd (apt-get install systemd)"
for tool in unshare nsenter; do
    command -v "$tool" >/dev/null || cannot "no $tool (util-linux)"
done
if [[ -d /run/systemd/system ]]; then
    # Plain `systemctl` works there; a second systemd would fight it for the
    # cgroup tree. This test is for machines where systemd is not PID 1.
    cannot "systemd already runs this machine; this test boots its own and is meant for CI machines without one"
fi
unshare --fork --pid --mount --mount-proc true 2>/dev/null ||
    cannot "cannot make PID and mount namespaces here (unshare failed)"
if [[ $(dpkg-query -W -f='${Status}' tokenwatch 2>/dev/null) =~ installed|config-files ]]; then
    fail "tokenwatch is installed on this host; this test installs and purges it (dpkg -P tokenwatch first)"
fi
work=$(mktemp -d /tmp/tokenwatch-systemd-e2e.XXXXXX)
cgroups_before=$(cgroup_dirs)

# Runs in the new namespaces, then becomes systemd (PID 1 there).
boot='set -e
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs -o mode=1777 tmpfs /var/tmp
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p /var/log/journal
mount -t tmpfs -o mode=2755 tmpfs /var/log/journal
# Container images ship a policy-rc.d that forbids maintainer scripts to
# start or restart anything (exit 101); a real host has none. Hidden here
# only, so the postinst acts as on a real host.
if [ -x /usr/sbin/policy-rc.d ]; then mount --bind /dev/null /usr/sbin/policy-rc.d; fi
mkdir -p /run/systemd/system/tokenwatch.service.d
cat >/run/systemd/system/tokenwatch-e2e.target <<EOF
[Unit]
Description=tokenwatch e2e: nothing but what the test starts
DefaultDependencies=no
EOF
cat >/run/systemd/system/tokenwatch.service.d/e2e.conf <<EOF
# See .ci/systemd-e2e.sh: keeps sysinit.target (whole-machine units) out.
[Unit]
DefaultDependencies=no
EOF
ln -s /dev/null /run/systemd/system/network-online.target
exec /lib/systemd/systemd --system --unit=tokenwatch-e2e.target'
unshare --fork --pid --mount --mount-proc --net --uts --ipc --propagation private \
    env container=tokenwatch-e2e sh -c "$boot" >"$work/boot.log" 2>&1 &
unshare_pid=$!
for _ in $(seq 50); do
    sd_pid=$(cat "/proc/$unshare_pid/task/$unshare_pid/children" 2>/dev/null | awk '{print $1}')
    [[ -n $sd_pid ]] && [[ $(cat "/proc/$sd_pid/comm" 2>/dev/null) == systemd ]] && break
    sd_pid=
    sleep 0.2
done
[[ -n $sd_pid ]] || { cat "$work/boot.log"; cannot "systemd did not start in the namespaces"; }
# systemctl needs the manager's socket, which comes a moment after exec.
for _ in $(seq 100); do
    [[ -S /proc/$sd_pid/root/run/systemd/private ]] && break
    sleep 0.2
done
state=$(timeout 60 nsenter -t "$sd_pid" -m -p -n -u -i -- systemctl is-system-running --wait 2>&1) || true
[[ $state == running || $state == degraded ]] ||
    { cat "$work/boot.log"; cannot "the namespace's systemd did not finish booting: '$state'"; }
say "systemd $(ns systemctl --version | head -n 1 | awk '{print $2}') is PID 1 of the namespace (host PID $sd_pid): $state"
# The journal, to read the daemon's lines next to systemd's.
ns systemctl start systemd-journald.service

# --- install ----------------------------------------------------------------
step "install: enabled, not started"
install -d -m 0755 "$E2E"
debs=("$TARGET"/debian/tokenwatch_*_amd64.deb)
built=
((${#debs[@]} == 0)) || built=$(ls -t "${debs[@]}" | head -n 1)
if [[ -n $built ]]; then
    # Copied out of the checkout, which may lie under the host's /tmp, which
    # the namespace does not see.
    package=$E2E/$(basename "$built")
    cp "$built" "$package"
    say "installing $package inside the namespace (its postinst sees this systemd)"
    ns dpkg -i "$package" >/dev/null
    [[ $(ns systemctl is-enabled "$UNIT") == enabled ]] || fail "the package did not enable $UNIT"
    [[ $(show ActiveState) == inactive ]] || fail "the package started $UNIT on first install"
    say "$UNIT enabled, inactive"
else
    say "no package in $TARGET/debian (did .ci/deb.sh fail?): installing the unit by hand"
    by_hand=1
    bin=$TARGET/release/tokenwatch
    if [[ ! -x $bin ]]; then
        bin=$DEBUG_BIN
        tw_is_debug=1
    fi
    [[ -x $bin ]] || fail "no tokenwatch binary to install"
    install -m 0755 "$bin" /usr/bin/tokenwatch
    install -m 0644 systemd/tokenwatch.sysusers /usr/lib/sysusers.d/tokenwatch.conf
    install -m 0644 systemd/tokenwatch.service /etc/systemd/system/tokenwatch.service
    ns systemd-sysusers tokenwatch.conf
    ns systemctl daemon-reload
fi
TW=/usr/bin/tokenwatch

# --- configuration and a token folder ---------------------------------------
install -d -m 0750 -g tokenwatch "$TOKENS"
good_config() {
    cat <<EOF
# systemd-e2e: file transport into the state folder, one token folder.
state_dir = "$STATE"
timezone = "UTC"

[alerts]
recipients = ["ops@example.com"]

[mail]
transport = "file"

[[folder]]
path = "$TOKENS"
EOF
}
write_config() { install -D -m 0640 -g tokenwatch /dev/stdin "$CONF"; }
broken_config() { good_config && printf '\n[alerts.bogus]\nno_such_key = 1\n'; }
good_config | write_config
sample() { # ORG DAYS FILE
    "$TW" sample-token --org "$1" --days "$2" -o "$3" >/dev/null
    chgrp tokenwatch "$3"
    chmod 0640 "$3"
}
sample "E2E Fine Org" 200 "$TOKENS/fine.vpptoken"

# --- start ------------------------------------------------------------------
step "systemctl start returns after READY=1"
ns systemctl start "$UNIT" || fail "systemctl start failed"
[[ $(show Type) == notify ]] || fail "Type is $(show Type), not notify"
[[ $(show ActiveState) == active ]] || fail "not active right after start: $(show ActiveState)"
main_pid=$(show MainPID)
# systemd logs "Started" when READY=1 arrives; the daemon logs "watching"
# after its first scan, just before it sends READY=1.
journal=$(ns journalctl --no-pager -u "$UNIT" -o cat)
watching_at=$(grep -n -m 1 'watching' <<<"$journal" | cut -d: -f1)
started_at=$(grep -n '^Started ' <<<"$journal" | tail -n 1 | cut -d: -f1)
[[ -n $watching_at && -n $started_at ]] ||
    fail "journal lacks the daemon's 'watching' line or systemd's 'Started' line"
((watching_at < started_at)) ||
    fail "systemd reported Started (line $started_at) before the first scan was done (line $watching_at)"
say "active (MainPID $main_pid); first scan logged before systemd's Started line"

# --- STATUS= ------------------------------------------------------------------
step "STATUS= in systemctl status"
status_text() { show StatusText; }
status=$(status_text)
[[ -n $status ]] || fail "systemctl status has no Status: line: the daemon sent no STATUS="
say "Status: \"$status\""
[[ $status =~ ^watching\ 1\ credentials?\ in\ 1\ folders?\;\ 0\ expiring ]] ||
    fail "STATUS= is '$status', expected 'watching 1 credential in 1 folder; 0 expiring'"
# Captured, not piped into head: under pipefail, head leaving early would kill
# systemctl with SIGPIPE and fail the run.
unit_status=$(ns systemctl status --no-pager "$UNIT" || true)
head -n 12 <<<"$unit_status"

# --- a token dropped in ------------------------------------------------------
step "a token dropped into the folder produces its mail"
mails() { local m=("$MAIL"/*.eml); echo "${#m[@]}"; }
mails_before=$(mails)
sample "E2E Dropped Org" 5 "$TOKENS/dropped.vpptoken"
new_mail() { (($(mails) > mails_before)); }
wait_for 60 "no mail in $MAIL for the dropped token" new_mail
eml=$(ls -t "$MAIL"/*.eml | head -n 1)
grep -q 'E2E Dropped Org' "$eml" || fail "the new mail $eml does not name the dropped token's org"
say "mail: $eml ($(grep -m1 '^Subject:' "$eml"))"
follows() { [[ $(status_text) =~ ^watching\ 2\ credentials\ in\ 1\ folder\;\ 1\ expiring ]]; }
wait_for 30 "STATUS= did not follow the dropped token" follows
say "Status: \"$(status_text)\""

# --- reload with a broken config -------------------------------------------
step "systemctl reload with a broken config"
broken_config | write_config
ns systemctl reload "$UNIT" || fail "systemctl reload failed"
[[ $(show ActiveState) == active ]] || fail "not active after a rejected reload: $(show ActiveState)"
[[ $(show MainPID) == "$main_pid" ]] || fail "MainPID changed on reload"
out=$("$TW" status 2>&1) || true
grep -q 'rejected the current config' <<<"$out" || fail "tokenwatch status shows no rejected config: $out"
grep -q 'alerts.bogus: unknown key' <<<"$out" || fail "tokenwatch status does not name the bad key: $out"
grep -A3 'rejected the current config' <<<"$out"
good_config | write_config
ns systemctl reload "$UNIT" || fail "systemctl reload of the good config failed"
out=$("$TW" status 2>&1) || true
grep -q 'rejected the current config' <<<"$out" && fail "status still shows the rejection after a good reload: $out"
say "active on the previous config while broken; error cleared after the fix"

# --- security of the running unit ------------------------------------------
step "systemd-analyze security of the running unit"
report=$(ns systemd-analyze security --no-pager "$UNIT" 2>&1) || true
overall=$(grep -o 'Overall exposure level for [^:]*: [0-9.]*' <<<"$report" | awk '{print $NF}')
[[ -n $overall ]] || fail "systemd-analyze security printed no score: $report"
awk -v x="$overall" -v max="$MAX_EXPOSURE" 'BEGIN { exit !(x <= max) }' ||
    { printf '%s\n' "$report"; fail "exposure $overall is above $MAX_EXPOSURE"; }
say "exposure $overall (at most $MAX_EXPOSURE)"

# --- upgrade restarts ---------------------------------------------------------
if [[ -n $package ]]; then
    step "a package upgrade restarts the running service"
    pid_before=$(show MainPID)
    ns dpkg -i "$package" >/dev/null
    [[ $(show ActiveState) == active ]] || fail "not active after the upgrade: $(show ActiveState)"
    [[ $(show MainPID) != "$pid_before" ]] || fail "the upgrade did not restart $UNIT (MainPID $pid_before)"
    cmp -s <(good_config) "$CONF" || fail "the upgrade replaced the edited conffile"
    say "restarted: MainPID $pid_before -> $(show MainPID); edited config kept"
    main_pid=$(show MainPID)
fi

# --- stop ---------------------------------------------------------------------
step "systemctl stop ends it cleanly"
ns systemctl stop "$UNIT" || fail "systemctl stop failed"
[[ $(show ActiveState) == inactive ]] || fail "state after stop: $(show ActiveState)"
[[ $(show Result) == success ]] || fail "result after stop: $(show Result)"
# Status 0: it exited by itself with 0; killed by the SIGTERM it would be 15.
[[ $(show ExecMainStatus) == 0 ]] ||
    fail "the daemon did not exit 0 on SIGTERM: status $(show ExecMainStatus)"
journal=$(ns journalctl --no-pager -u "$UNIT" -o cat)
grep -q 'stopped' <<<"$journal" || fail "no 'stopped' line in the journal"
say "inactive, exit 0, result success"

# --- watchdog -----------------------------------------------------------------
step "watchdog: a stuck daemon is killed and restarted"
# The hook exists in debug builds only: while the file named by
# TOKENWATCH_TEST_STALL_FILE exists, the daemon's loop blocks where it would
# ping systemd, as a wedged loop would. The packaged release binary must not
# even know the variable.
readonly STALL_ENV=TOKENWATCH_TEST_STALL_FILE
if [[ $tw_is_debug == 1 ]]; then
    say "note: $TW is a debug build here (no package, no release build): not checked for the hook"
elif grep -qa "$STALL_ENV" "$TW"; then
    fail "$TW (the release build) contains the test hook $STALL_ENV"
fi
[[ -x $DEBUG_BIN ]] || fail "no debug build at $DEBUG_BIN for the watchdog check (cargo build)"
grep -qa "$STALL_ENV" "$DEBUG_BIN" || fail "$DEBUG_BIN has no $STALL_ENV hook"
install -D -m 0755 "$DEBUG_BIN" /usr/local/lib/tokenwatch-e2e/tokenwatch
stall=$E2E/stall
good_config | write_config
# The drop-in goes to the namespace's /run, reached through systemd's root.
dropins=/proc/$sd_pid/root/run/systemd/system/tokenwatch.service.d
cat >"$dropins/watchdog.conf" <<EOF
[Service]
ExecStart=
ExecStart=/usr/local/lib/tokenwatch-e2e/tokenwatch run
Environment=$STALL_ENV=$stall
WatchdogSec=3s
EOF
ns systemctl daemon-reload
ns systemctl start "$UNIT" || fail "the debug build did not start"
pid_before=$(show MainPID)
restarts_before=$(show NRestarts)
touch "$stall"
killed() { [[ $(show Result) == watchdog ]]; }
wait_for 30 "the watchdog did not kill the stuck daemon" killed
rm -f "$stall"
restarted() { [[ $(show ActiveState) == active && $(show NRestarts) == $((restarts_before + 1)) ]]; }
wait_for 30 "not restarted once after the watchdog kill (NRestarts was $restarts_before)" restarted
[[ $(show MainPID) != "$pid_before" ]] || fail "MainPID unchanged after the watchdog restart"
# Read whole first: grep -q would stop reading, and pipefail would count
# journalctl's SIGPIPE as a failure.
journal=$(ns journalctl --no-pager -u "$UNIT" -o cat)
grep -q 'Watchdog timeout' <<<"$journal" ||
    fail "no 'Watchdog timeout' in the journal"
say "killed by the watchdog (SIGABRT), restarted: MainPID $pid_before -> $(show MainPID), NRestarts $(show NRestarts)"
ns systemctl stop "$UNIT"
rm -f "$dropins/watchdog.conf"
ns systemctl daemon-reload
ns systemctl reset-failed "$UNIT" 2>/dev/null || true

# --- invalid config at start -------------------------------------------------
step "an invalid config at start: failed, no restart"
broken_config | write_config
if ns systemctl start "$UNIT" 2>/dev/null; then
    fail "systemctl start succeeded with an invalid config"
fi
[[ $(show ActiveState) == failed ]] || fail "state: $(show ActiveState), expected failed"
[[ $(show ExecMainStatus) == 3 ]] || fail "exit status $(show ExecMainStatus), expected 3"
# Longer than RestartSec=5s: a restart would have happened by now.
sleep 7
[[ $(show ActiveState) == failed ]] || fail "state after 7 s: $(show ActiveState), expected failed"
[[ $(show NRestarts) == 0 ]] || fail "restarted $(show NRestarts) times with an invalid config"
say "failed with exit 3; no restart after 7 s (RestartSec=5s)"
ns systemctl reset-failed "$UNIT"

step_done
say "all systemd checks passed"
