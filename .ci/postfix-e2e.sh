#!/usr/bin/env bash
# End-to-end mail test: `tokenwatch test-mail` delivers through a real Postfix
# on 127.0.0.1:25 with STARTTLS, trusting a self-signed CA given as ca_file,
# and the message must show up in a local user's mailbox within 60 seconds.
#
# Needs root, postfix and openssl installed (.ci/run installs postfix), and
# the binary built (default target/debug/tokenwatch; override with
# TOKENWATCH_BIN). Installs nothing. It rewrites Postfix's main.cf settings
# listed below: run it on a CI machine or container, not on a mail server.
#
# Environment:
#   TOKENWATCH_BIN   binary to test (default: target/debug/tokenwatch)
#   E2E_MAIL_USER    local user that receives the mail (default: tokenwatch-e2e;
#                    created if missing)
#   E2E_KEEP=1       keep the work directory even on success
set -euo pipefail

BIN=${TOKENWATCH_BIN:-target/debug/tokenwatch}
MAIL_USER=${E2E_MAIL_USER:-tokenwatch-e2e}
MAILBOX=/var/mail/$MAIL_USER
DEADLINE_SECS=60
TLS_DIR=/etc/postfix/tokenwatch-e2e
POSTFIX_LOG=/var/log/postfix-tokenwatch-e2e.log
WORK=$(mktemp -d /tmp/tokenwatch-postfix-e2e.XXXXXX)
STARTED_POSTFIX=0

say() { printf 'postfix-e2e: %s\n' "$*" >&2; }

diagnose() {
    say "FAILED; work dir kept: $WORK"
    say "--- postfix log (last 40 lines of $POSTFIX_LOG)"
    tail -n 40 "$POSTFIX_LOG" >&2 2>/dev/null || true
    say "--- mail queue"
    postqueue -p >&2 2>&1 || true
}

cleanup() {
    local rc=$?
    if [ "$rc" -ne 0 ]; then
        diagnose
    elif [ "${E2E_KEEP:-0}" != 1 ]; then
        rm -rf "$WORK"
    fi
    if [ "$STARTED_POSTFIX" = 1 ]; then
        postfix stop >/dev/null 2>&1 || true
    fi
    exit "$rc"
}
trap cleanup EXIT

if [ "$(id -u)" -ne 0 ]; then
    say "must run as root (configures Postfix, creates a local user)"
    exit 2
fi
for tool in postfix postconf openssl; do
    command -v "$tool" >/dev/null || { say "$tool is not installed"; exit 2; }
done
[ -x "$BIN" ] || { say "tokenwatch binary $BIN not found; build it first"; exit 2; }

# --- the receiving local user, with an empty mailbox -----------------------
if ! id "$MAIL_USER" >/dev/null 2>&1; then
    useradd --system --no-create-home --shell /usr/sbin/nologin "$MAIL_USER"
fi
rm -f "$MAILBOX"

# --- a CA and a server certificate for 127.0.0.1 / localhost ---------------
# EC P-256 keys; the server certificate is a non-CA leaf with the SANs and
# serverAuth usage that rustls/webpki insist on.
mkdir -p "$TLS_DIR"
chmod 0755 "$TLS_DIR"
openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
    -keyout "$WORK/ca.key" -out "$WORK/ca.pem" -days 2 \
    -subj "/CN=tokenwatch e2e test CA" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
    -keyout "$TLS_DIR/server.key" -out "$WORK/server.csr" \
    -subj "/CN=localhost" 2>/dev/null
cat >"$WORK/server.ext" <<'EOF'
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,DNS:localhost
EOF
openssl x509 -req -in "$WORK/server.csr" -CA "$WORK/ca.pem" -CAkey "$WORK/ca.key" \
    -CAcreateserial -days 2 -extfile "$WORK/server.ext" \
    -out "$TLS_DIR/server.pem" 2>/dev/null
chmod 0600 "$TLS_DIR/server.key"
chmod 0644 "$TLS_DIR/server.pem"
openssl verify -CAfile "$WORK/ca.pem" "$TLS_DIR/server.pem" >/dev/null

# --- Postfix: loopback only, STARTTLS with that certificate, local mailboxes
postconf -e \
    "myhostname = tokenwatch-e2e.localdomain" \
    "mydestination = \$myhostname, localhost.localdomain, localhost" \
    "inet_interfaces = 127.0.0.1" \
    "inet_protocols = ipv4" \
    "mynetworks = 127.0.0.0/8" \
    "relayhost =" \
    "smtpd_tls_cert_file = $TLS_DIR/server.pem" \
    "smtpd_tls_key_file = $TLS_DIR/server.key" \
    "smtpd_tls_security_level = may" \
    "smtpd_tls_loglevel = 1" \
    "smtpd_tls_received_header = yes" \
    "home_mailbox =" \
    "mail_spool_directory = /var/mail" \
    "maillog_file = $POSTFIX_LOG"
newaliases
postfix check
: >"$POSTFIX_LOG" # so a failure shows this run's log only
if postfix status >/dev/null 2>&1; then
    postfix reload >/dev/null 2>&1
else
    postfix start >/dev/null 2>&1
    STARTED_POSTFIX=1
fi

# Wait (with a deadline) until Postfix answers STARTTLS with a certificate
# that verifies against the CA: a failure here is Postfix's, not tokenwatch's.
deadline=$((SECONDS + 30))
until openssl s_client -starttls smtp -connect 127.0.0.1:25 -verify_return_error \
        -CAfile "$WORK/ca.pem" -verify_ip 127.0.0.1 </dev/null >"$WORK/s_client.log" 2>&1; do
    if [ "$SECONDS" -ge "$deadline" ]; then
        say "Postfix did not offer a verifiable STARTTLS on 127.0.0.1:25 within 30 s:"
        tail -n 20 "$WORK/s_client.log" >&2
        exit 1
    fi
    sleep 0.5
done
say "Postfix is up on 127.0.0.1:25 with STARTTLS"

# --- tokenwatch config: SMTP + STARTTLS + ca_file --------------------------
mkdir -p "$WORK/tokens" "$WORK/state"
cat >"$WORK/tokenwatch.toml" <<EOF
state_dir = "state"
timezone = "UTC"

[alerts]
recipients = ["$MAIL_USER@localhost"]
from = "tokenwatch e2e <tokenwatch@localhost>"

[[folder]]
path = "tokens"

[mail]
transport = "smtp"
host = "127.0.0.1"
port = 25
tls = "starttls"
ca_file = "$WORK/ca.pem"
timeout_secs = 30
EOF

say "running: $BIN test-mail --to $MAIL_USER@localhost -c $WORK/tokenwatch.toml"
if ! "$BIN" test-mail --to "$MAIL_USER@localhost" -c "$WORK/tokenwatch.toml" \
        >"$WORK/test-mail.out" 2>"$WORK/test-mail.err"; then
    say "tokenwatch test-mail failed:"
    cat "$WORK/test-mail.out" "$WORK/test-mail.err" >&2
    exit 1
fi
cat "$WORK/test-mail.out" >&2

# --- the message must arrive, and must have come over TLS ------------------
deadline=$((SECONDS + DEADLINE_SECS))
until [ -s "$MAILBOX" ] && grep -q '^Subject: \[tokenwatch\] Test mail' "$MAILBOX"; do
    if [ "$SECONDS" -ge "$deadline" ]; then
        say "no test mail in $MAILBOX after $DEADLINE_SECS s"
        exit 1
    fi
    sleep 0.5
done
# Postfix notes the TLS session in its Received header ("using TLSv1.3 ..."
# with smtpd_tls_received_header) and the protocol as ESMTPS.
if ! grep -q 'with ESMTPS' "$MAILBOX"; then
    say "the mail arrived, but not over TLS:"
    sed -n '1,20p' "$MAILBOX" >&2
    exit 1
fi
grep -q '^Auto-Submitted: auto-generated' "$MAILBOX" \
    || { say "the mail lacks Auto-Submitted: auto-generated"; exit 1; }
say "OK: test mail delivered over STARTTLS to $MAILBOX"
