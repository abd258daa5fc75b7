#!/usr/bin/env bash
# Builds the Debian package with `cargo deb` alone and checks it the way an
# admin meets it:
#   1. tools: cargo-deb (pinned, installed once) and lintian;
#   2. `cargo deb`: one step from a checkout, no duplicate assets (a stale
#      build folder would otherwise ship an old man page);
#   3. lintian: no error (overrides are in contrib/debian/, each with its why);
#   4. `dpkg -i`: the tokenwatch user, every file with owner and mode, the
#      conffile root:tokenwatch 0640, the unit enabled, the man page;
#   5. `tokenwatch config check` as the tokenwatch user on the shipped
#      config: it validates the example and proves the service user can
#      read the conffile (another user cannot);
#   6. `dpkg -r` keeps the config and the state; `dpkg -P` removes both;
#   7. the README's move from a hand install keeps the edited config.
#
# Usage: .ci/deb.sh   (as root, on Debian; installs and purges the package on
# this host, so it refuses to run where tokenwatch is already installed,
# unless CI=true). Prints each step's time. The .deb stays in target/debian/
# for .ci/systemd-e2e.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export DEBIAN_FRONTEND=noninteractive

readonly CARGO_DEB_VERSION=3.8.0
readonly CONF=/etc/tokenwatch/tokenwatch.toml
readonly STATE=/var/lib/tokenwatch

fail() {
    echo "deb: FAIL: $*" >&2
    exit 1
}
STEP_PREFIX=deb
# shellcheck source=.ci/steps.sh
source .ci/steps.sh  # the script has cd-ed to the checkout
# mode owner group of a path, as `stat` prints them.
perms() { stat -c '%a %U %G' "$1"; }
expect_perms() {
    local path=$1 want=$2 got
    [[ -e $path ]] || fail "$path is missing"
    got=$(perms "$path")
    [[ $got == "$want" ]] || fail "$path is '$got', expected '$want'"
    echo "deb: $path $got"
}

[[ $(id -u) -eq 0 ]] || fail "run as root: it installs the package"
installed() { [[ $(dpkg-query -W -f='${Status}' tokenwatch 2>/dev/null) =~ installed|config-files ]]; }
if installed; then
    [[ ${CI:-} == true ]] ||
        fail "tokenwatch is installed on this host; this script would purge it (run it in CI, or dpkg -P tokenwatch first)"
    dpkg -P tokenwatch >/dev/null
fi

# --- 1. tools ---------------------------------------------------------------
step "tools (cargo-deb $CARGO_DEB_VERSION, lintian)"
# man-db: the man page is rendered below as `man` would show it.
for tool in lintian:lintian man:man-db; do
    command -v "${tool%%:*}" >/dev/null ||
        apt-get install -y -q --no-install-recommends "${tool#*:}" >/dev/null
done
if [[ $(cargo deb --version 2>/dev/null || true) != *" $CARGO_DEB_VERSION"* ]]; then
    cargo install --locked --quiet cargo-deb --version "$CARGO_DEB_VERSION"
fi
cargo deb --version
lintian --version

# --- 2. build ---------------------------------------------------------------
step "cargo deb (release build, man page, completions, package)"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo deb --locked 2>&1 | tee "$log"
if grep -q 'Duplicate assets' "$log"; then
    fail "cargo deb found two files for one path (a stale target/release/build/tokenwatch-*?): cargo clean --release -p tokenwatch"
fi
deb=$(grep -E '\.deb$' "$log" | tail -n 1)
[[ -f $deb ]] || fail "cargo deb printed no package path"
version=$(dpkg-deb -f "$deb" Version)
[[ $(basename "$deb") == "tokenwatch_${version}_amd64.deb" ]] ||
    fail "package is named $(basename "$deb"), expected tokenwatch_${version}_amd64.deb"
echo "deb: built $deb"
dpkg-deb -I "$deb"
dpkg-deb -c "$deb"
depends=$(dpkg-deb -f "$deb" Depends)
[[ $depends == *"systemd | systemd-standalone-sysusers"* ]] ||
    fail "Depends lacks 'systemd | systemd-standalone-sysusers': $depends"

# --- 3. lintian ---------------------------------------------------------------
step "lintian"
# Errors fail (exit 2); warnings and notes are shown for the record. As root
# it says so on stderr; that is CI's normal.
lintian --fail-on error --display-info --show-overrides "$deb"

# --- 4. install ---------------------------------------------------------------
step "dpkg -i and what it installed"
dpkg -i "$deb"
entry=$(getent passwd tokenwatch) || fail "no tokenwatch user after install"
[[ $entry == tokenwatch:x:*:*:*:/var/lib/tokenwatch:/usr/sbin/nologin ]] ||
    fail "tokenwatch user is '$entry'"
getent group tokenwatch >/dev/null || fail "no tokenwatch group"
echo "deb: user $entry"
expect_perms /usr/bin/tokenwatch "755 root root"
expect_perms /usr/lib/systemd/system/tokenwatch.service "644 root root"
expect_perms /usr/lib/sysusers.d/tokenwatch.conf "644 root root"
expect_perms "$CONF" "640 root tokenwatch"
expect_perms /usr/share/man/man1/tokenwatch.1.gz "644 root root"
expect_perms /usr/share/bash-completion/completions/tokenwatch "644 root root"
expect_perms /usr/share/zsh/vendor-completions/_tokenwatch "644 root root"
expect_perms /usr/share/fish/vendor_completions.d/tokenwatch.fish "644 root root"
expect_perms /usr/share/doc/tokenwatch/README.md "644 root root"
expect_perms /usr/share/doc/tokenwatch/examples/tokenwatch.rules.yml "644 root root"
expect_perms /usr/share/doc/tokenwatch/changelog.Debian.gz "644 root root"
expect_perms /usr/share/doc/tokenwatch/copyright "644 root root"
cmp -s systemd/tokenwatch.service /usr/lib/systemd/system/tokenwatch.service ||
    fail "the installed unit differs from systemd/tokenwatch.service"
cmp -s config/tokenwatch.toml "$CONF" || fail "$CONF differs from config/tokenwatch.toml"
conffiles=$(dpkg-query -W -f='${Conffiles}\n' tokenwatch)
grep -q "^ $CONF " <<<"$conffiles" || fail "$CONF is not a conffile: $conffiles"
# Enabled: deb-systemd-helper made the [Install] link even without a
# running systemd; nothing was started (there is no systemd to start it here,
# .ci/systemd-e2e.sh checks that under a real one).
[[ -L /etc/systemd/system/multi-user.target.wants/tokenwatch.service ]] ||
    fail "tokenwatch.service is not enabled (no multi-user.target.wants link)"
echo "deb: tokenwatch.service enabled"
# The man page renders without warnings, and documents every subcommand.
warnings=$(MANWIDTH=100 man --warnings -l /usr/share/man/man1/tokenwatch.1.gz 2>&1 >/dev/null)
[[ -z $warnings ]] || fail "man page warnings: $warnings"
page=$(MANWIDTH=100 man -l /usr/share/man/man1/tokenwatch.1.gz 2>/dev/null)
# Every command `tokenwatch --help` lists has its section.
subs=$(/usr/bin/tokenwatch --help | sed -n '/^Commands:/,/^$/p' | awk 'NR > 1 && $1 != "help" { print $1 }')
[[ $(wc -w <<<"$subs") -ge 10 ]] || fail "tokenwatch --help lists too few commands: $subs"
for sub in $subs "outbox retry" "account password-changed" "config check"; do
    grep -q "^ *tokenwatch $sub\$" <<<"$page" || fail "the man page has no section 'tokenwatch $sub'"
done
echo "deb: man tokenwatch: $(wc -l <<<"$page") lines, every subcommand"
# The completions load in their shell, where the shell is here.
bash -c 'source /usr/share/bash-completion/completions/tokenwatch && complete -p tokenwatch' ||
    fail "bash completion does not register for tokenwatch"
tokenwatch --version

# --- 5. config check as the service user ---------------------------------------
step "tokenwatch config check as the tokenwatch user"
# `config check` reads and validates the file, and reads the webhook URL and
# key files it names (the example names none): no folder, network or state
# is touched, so the example (folders under /srv that do not exist here)
# passes. What it proves here is the packaging: the service user can read
# the conffile, and a user outside the group cannot.
runuser -u tokenwatch -- tokenwatch config check
if out=$(runuser -u nobody -- tokenwatch config check 2>&1); then
    fail "user nobody could read $CONF: $out"
fi
grep -q 'Permission denied' <<<"$out" || fail "config check as nobody failed otherwise: $out"
echo "deb: as nobody, refused as it should be: $out"

# --- 6. remove and purge --------------------------------------------------------
step "dpkg -r, then dpkg -P"
# State a daemon would have left.
install -d -m 0700 -o tokenwatch -g tokenwatch "$STATE"
touch "$STATE/state.db"
dpkg -r tokenwatch
[[ ! -e /usr/bin/tokenwatch ]] || fail "dpkg -r left /usr/bin/tokenwatch"
[[ ! -e /usr/lib/systemd/system/tokenwatch.service ]] || fail "dpkg -r left the unit"
expect_perms "$CONF" "640 root tokenwatch"
[[ -e $STATE/state.db ]] || fail "dpkg -r removed the state"
echo "deb: removed; config and state kept"
dpkg -P tokenwatch
[[ ! -e $CONF ]] || fail "dpkg -P left $CONF"
[[ ! -e /etc/tokenwatch ]] || fail "dpkg -P left /etc/tokenwatch: $(ls -A /etc/tokenwatch)"
[[ ! -e $STATE ]] || fail "dpkg -P left $STATE"
[[ ! -e /etc/systemd/system/multi-user.target.wants/tokenwatch.service ]] ||
    fail "dpkg -P left the enablement link"
installed && fail "dpkg still lists tokenwatch after purge: $(dpkg-query -W -f='${Status}' tokenwatch)"
echo "deb: purged; config and state gone (the tokenwatch user stays, as Debian keeps system users)"
# --- 7. from a hand install ------------------------------------------------------
step "moving from a hand install (README) keeps the config"
# What the hand install left once its unit is gone: the user, and an edited
# config root:tokenwatch 0640 that no package owns yet.
install -d -m 0755 /etc/tokenwatch
{ echo "# edited by hand"; cat config/tokenwatch.toml; } | install -m 0640 -g tokenwatch /dev/stdin "$CONF"
dpkg -i --force-confold "$deb" </dev/null
[[ $(head -n 1 "$CONF") == "# edited by hand" ]] || fail "dpkg -i --force-confold replaced the existing config"
expect_perms "$CONF" "640 root tokenwatch"
dpkg -P tokenwatch >/dev/null
[[ ! -e $CONF ]] || fail "dpkg -P left $CONF"
echo "deb: the existing config became the conffile, unchanged"
step_done
echo "deb: all package checks passed ($deb)"
