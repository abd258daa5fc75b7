#!/usr/bin/env python3
"""Daemon scenarios of the tokenwatch benchmarks (issue 6), driven by
benches/run.sh; standard library only.

Each subcommand starts the real `tokenwatch run` on data made by the
gen_tokens example, measures one thing, stops the daemon with SIGTERM and
prints one JSON object per run on stdout:

  startup  time from spawn to READY=1 (sd-notify, read from a NOTIFY_SOCKET
           this script listens on), then VmRSS/VmHWM once the first scan
           and its follow-up rescan are done
  idle     utime+stime of the daemon over a quiet window (the scheduled
           full scan moved out of it)
  rescan   utime+stime of one scheduled full scan of unchanged folders
           (the hourly safety net, run every 15 s for the measurement)
  pollidle the same data in `poll = true` folders: bytes the daemon wrote
           (wchar of /proc/PID/io, needs root or the same user) and
           utime+stime over a quiet window, logging at warn
  latency  rename of a new token due an alert (expires in 5 days) into a
           watched folder -> its row in the state database (polled
           read-only every 2 ms) and its alert's .eml in [mail] dir (file
           transport, seen by inotifywait), next to `inotifywait` seeing
           the token's rename
  alerts   N tokens all due an alert at first sight, mailed by SMTP to a
           sink on 127.0.0.1 (or, with --channel webhook, posted to a
           receiver on 127.0.0.1): time from spawn until every one
           arrived, and whether each arrived exactly once (by Message-ID,
           or Idempotency-Key)
  huge     the million-credential run (`benches/run.sh --huge`): a first
           start under systemd's watchdog (WATCHDOG_USEC, WATCHDOG_PID set
           as systemd does), time to READY=1, memory once settled, one
           scheduled full scan and pass (CPU and wall), and every
           WATCHDOG=1 ping's arrival: the longest gap between pings
"""

import argparse
import asyncio
import json
import os
import select
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(*a):
    print("[daemon.py]", *a, file=sys.stderr, flush=True)


class Daemon:
    """`tokenwatch run` with a NOTIFY_SOCKET this object listens on."""

    def __init__(self, tw, cfg, logfile, rust_log=None, watchdog_usec=None):
        self.sockdir = tempfile.mkdtemp(prefix="twnotify")
        self.sockpath = os.path.join(self.sockdir, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.sockpath)
        rust_log = rust_log or os.environ.get("TOKENWATCH_BENCH_LOG", "info,tokio_cron_scheduler=warn")
        env = dict(os.environ, NOTIFY_SOCKET=self.sockpath, RUST_LOG=rust_log)
        argv = [tw, "-c", cfg, "run"]
        if watchdog_usec:
            # As systemd does: WATCHDOG_PID is the daemon's own pid (sd-notify
            # ignores WATCHDOG_USEC otherwise), so a shell sets it to its own
            # and execs the daemon in its place.
            env["WATCHDOG_USEC"] = str(watchdog_usec)
            argv = ["/bin/sh", "-c", 'WATCHDOG_PID=$$; export WATCHDOG_PID; exec "$@"', "sh"] + argv
        self.log = open(logfile, "ab")
        self.log_start = self.log.tell()
        self.t_spawn = time.monotonic()
        self.proc = subprocess.Popen(argv, env=env, stdout=self.log, stderr=self.log)

    def wait_ready(self, timeout=120.0):
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError("no READY=1 within %.0f s" % timeout)
            if self.proc.poll() is not None:
                raise RuntimeError("daemon exited with %s before READY=1" % self.proc.returncode)
            self.sock.settimeout(min(left, 0.5))
            try:
                msg = self.sock.recv(4096)
            except socket.timeout:
                continue
            if b"READY=1" in msg.split(b"\n"):
                ready = time.monotonic() - self.t_spawn
                # systemd reads every notification; a listener that stops
                # reading fills the socket's queue (about a dozen STATUS=
                # lines) and the daemon's next notification blocks.
                threading.Thread(target=self._drain, daemon=True).start()
                return ready

    def _drain(self):
        while True:
            try:
                self.sock.settimeout(0.5)
                self.sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return

    def status(self):
        out = {}
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                k, _, v = line.partition(":")
                # RssFile: mapped pages of the binary and its libraries
                # (shared with the page cache); RssAnon: the daemon's data.
                if k in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                    out[k] = int(v.split()[0]) / 1024.0  # MiB
        return out

    def cpu_seconds(self):
        with open("/proc/%d/stat" % self.proc.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def wchar(self):
        """Bytes the daemon passed to write(2) and friends so far: files,
        the database, its log, sockets."""
        with open("/proc/%d/io" % self.proc.pid) as f:
            for line in f:
                k, _, v = line.partition(":")
                if k == "wchar":
                    return int(v)
        raise RuntimeError("no wchar in /proc/%d/io" % self.proc.pid)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.sock.close()
        shutil.rmtree(self.sockdir, ignore_errors=True)
        self.log.close()


def db_path(data, state="state"):
    return os.path.join(data, state, "tokenwatch.db")


def wait_settled(d, data, timeout=120.0, state="state"):
    """Waits until the daemon has recorded a scan and then used (almost) no
    CPU for a whole second: the start-up pass, the rescan that follows
    arming the watch, and the first mail are done."""
    deadline = time.monotonic() + timeout
    while not read_db(data, "SELECT scan_seq FROM daemon_status WHERE id = 1 AND last_scan_at IS NOT NULL", state=state):
        if time.monotonic() > deadline:
            raise RuntimeError("no scan recorded within %.0f s" % timeout)
        time.sleep(0.05)
    last = d.cpu_seconds()
    while time.monotonic() < deadline:
        time.sleep(1.0)
        now = d.cpu_seconds()
        if now - last <= 0.02:
            return
        last = now
    raise RuntimeError("the daemon did not go idle within %.0f s" % timeout)


def read_db(data, sql, args=(), state="state"):
    conn = sqlite3.connect("file:%s?mode=ro" % db_path(data, state), uri=True, timeout=5)
    try:
        row = conn.execute(sql, args).fetchone()
        return row[0] if row else None
    finally:
        conn.close()


def fresh_state(data):
    shutil.rmtree(os.path.join(data, "state"), ignore_errors=True)


def cmd_startup(a):
    cfg = os.path.join(a.data, "tokenwatch.toml")
    for i in range(a.runs):
        if a.fresh or i == 0:
            fresh_state(a.data)
        d = Daemon(a.tw, cfg, a.log)
        try:
            ready = d.wait_ready()
            at_ready = d.status()
            wait_settled(d, a.data)
            settled = d.status()
            emit(
                run=i,
                fresh_state=a.fresh or i == 0,
                ready_s=ready,
                rss_at_ready_mib=at_ready["VmRSS"],
                rss_mib=settled["VmRSS"],
                rss_anon_mib=settled["RssAnon"],
                rss_file_mib=settled["RssFile"],
                peak_rss_mib=settled["VmHWM"],
            )
        finally:
            d.stop()


def config_with_check(data, name, check):
    """The generated config with `[schedule] check` set, written beside it
    (same state): the scenarios below decide when the full scan runs."""
    with open(os.path.join(data, "tokenwatch.toml")) as f:
        text = f.read()
    if "[schedule]" in text:
        raise RuntimeError("the generated config already has a [schedule] table")
    cfg = os.path.join(data, name)
    with open(cfg, "w") as f:
        f.write(text + '\n[schedule]\ncheck = "%s"\n' % check)
    return cfg


def cmd_idle(a):
    # The hourly safety-net scan is measured on its own (rescan): here it
    # is moved to New Year so the window never holds one.
    cfg = config_with_check(a.data, "tokenwatch-idle.toml", "0 0 0 1 1 *")
    d = Daemon(a.tw, cfg, a.log)
    try:
        d.wait_ready()
        wait_settled(d, a.data)
        # Let the sender drain the start-up mail before counting.
        time.sleep(2)
        c0, t0 = d.cpu_seconds(), time.monotonic()
        time.sleep(a.seconds)
        c1, t1 = d.cpu_seconds(), time.monotonic()
        emit(window_s=t1 - t0, cpu_s=c1 - c0)
    finally:
        d.stop()


def cmd_pollidle(a):
    # The generated config with every folder polled, and a state of its own
    # so the other scenarios' state is left alone.
    with open(os.path.join(a.data, "tokenwatch.toml")) as f:
        text = f.read()
    text = text.replace('state_dir = "state"', 'state_dir = "state-poll"')
    text = text.replace("[[folder]]\n", "[[folder]]\npoll = true\n")
    cfg = os.path.join(a.data, "tokenwatch-poll.toml")
    with open(cfg, "w") as f:
        f.write(text)
    shutil.rmtree(os.path.join(a.data, "state-poll"), ignore_errors=True)
    d = Daemon(a.tw, cfg, a.log, rust_log="warn")
    try:
        d.wait_ready()
        wait_settled(d, a.data, state="state-poll")
        # The first pass queued mail (file transport): let the sender write it.
        deadline = time.monotonic() + 60
        while read_db(a.data, "SELECT count(*) FROM outbox WHERE state = 'pending'", state="state-poll"):
            if time.monotonic() > deadline:
                raise RuntimeError("the start-up mail was not written within 60 s")
            time.sleep(0.2)
        time.sleep(2)
        w0, c0, t0 = d.wchar(), d.cpu_seconds(), time.monotonic()
        time.sleep(a.seconds)
        w1, c1, t1 = d.wchar(), d.cpu_seconds(), time.monotonic()
        emit(window_s=t1 - t0, wchar_bytes=w1 - w0, cpu_s=c1 - c0)
    finally:
        d.stop()
        shutil.rmtree(os.path.join(a.data, "state-poll"), ignore_errors=True)


def cmd_rescan(a):
    """CPU time of one scheduled full scan of unchanged folders (the hourly
    safety net), run every 15 s here: utime+stime from 2 s before a fire
    instant to 6 s after it, less the idle CPU of an equal window without a
    fire. Each scan is checked to have happened (scan_seq moved on)."""
    period = 15
    cfg = config_with_check(a.data, "tokenwatch-rescan.toml", "*/%d * * * * *" % period)
    d = Daemon(a.tw, cfg, a.log, rust_log="warn")
    try:
        d.wait_ready()
        wait_settled(d, a.data)

        def until_offset(offset):
            # Sleeps to `offset` seconds after the next fire instant minus
            # 2 s, on the wall clock the schedule uses.
            now = time.time()
            fire = (int(now + 2) // period + 1) * period
            time.sleep(max(0.0, fire + offset - now))

        scans = []
        for _ in range(a.runs):
            until_offset(-2)
            seq0, c0 = read_db(a.data, "SELECT scan_seq FROM daemon_status WHERE id = 1"), d.cpu_seconds()
            time.sleep(8)
            seq1, c1 = read_db(a.data, "SELECT scan_seq FROM daemon_status WHERE id = 1"), d.cpu_seconds()
            if seq1 == seq0:
                raise RuntimeError("no scheduled scan between %s and %s" % (seq0, seq1))
            scans.append(c1 - c0)
        # The same window length between two fires: the idle part to take off.
        until_offset(3)
        c0 = d.cpu_seconds()
        time.sleep(8)
        idle = d.cpu_seconds() - c0
        for cpu in scans:
            emit(scan_cpu_s=max(0.0, cpu - idle), window_cpu_s=cpu, idle_cpu_s=idle)
    finally:
        d.stop()


class Inotify:
    """`inotifywait -m` on one folder, reporting the names renamed into it."""

    def __init__(self, folder):
        self.proc = subprocess.Popen(
            ["inotifywait", "-m", "-e", "moved_to", "--format", "%f", folder],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            bufsize=0,
        )
        self.buf = b""
        # inotifywait prints "Watches established." on stderr once armed.
        deadline = time.monotonic() + 30
        while True:
            ready, _, _ = select.select([self.proc.stderr], [], [], 1.0)
            if ready and b"Watches established" in self.proc.stderr.readline():
                break
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("inotifywait did not start on %s" % folder)

    def next_name(self, deadline):
        """The next name renamed in, or None at the deadline (monotonic)."""
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([self.proc.stdout], [], [], left)
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                if not chunk:
                    raise RuntimeError("inotifywait exited")
                self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line.decode()

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def cmd_latency(a):
    """Rename of a complete token that is due an alert (it expires in 5
    days) into a watched folder of the generated data -> its row in the
    state (polled every 2 ms) and its alert written by the file transport
    (the `.eml` renamed into `[mail] dir`, seen by a second inotifywait),
    next to inotifywait seeing the token's rename."""
    cfg = os.path.join(a.data, "tokenwatch.toml")
    folder = os.path.join(a.data, "tokens", "f000")
    maildir = os.path.join(a.data, "state", "mail")
    staging = os.path.join(a.data, "staging")
    os.makedirs(staging, exist_ok=True)
    fresh_state(a.data)
    d = Daemon(a.tw, cfg, a.log)
    watches = []
    try:
        d.wait_ready()
        wait_settled(d, a.data)
        # The first pass queued mail: let the sender write it first.
        deadline = time.monotonic() + 120
        while read_db(a.data, "SELECT count(*) FROM outbox WHERE state = 'pending'"):
            if time.monotonic() > deadline:
                raise RuntimeError("the start-up mail was not written within 120 s")
            time.sleep(0.2)
        time.sleep(1)
        os.makedirs(maildir, exist_ok=True)
        tokens = Inotify(folder)
        watches.append(tokens)
        mails = Inotify(maildir)
        watches.append(mails)
        conn = sqlite3.connect("file:%s?mode=ro" % db_path(a.data), uri=True, timeout=5)
        for i in range(a.runs):
            name = "latency-%d-%d.vpptoken" % (os.getpid(), i)
            src = os.path.join(staging, name)
            org = "Latency %d %d" % (os.getpid(), i)
            subprocess.run(
                [a.tw, "sample-token", "--org", org, "--days", "5", "-o", src],
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            os.chmod(src, 0o600)
            dst = os.path.join(folder, name)
            t0 = time.monotonic()
            os.rename(src, dst)
            seen = tokens.next_name(t0 + 10)
            t_inotify = time.monotonic() - t0
            if seen != name:
                raise RuntimeError("inotifywait saw %r, expected %r" % (seen, name))
            # Only the mail folder is watched until the alert is out: a
            # read of the state database meanwhile can wait for the
            # daemon's write and would delay seeing the mail.
            deadline = t0 + 10
            while True:
                # The alert's .eml (temporary files start with a dot), told
                # from other mail (a storm guard summary of earlier
                # alerts) by the organisation in its subject.
                eml = mails.next_name(deadline)
                if eml is None:
                    raise RuntimeError("no alert .eml for %s within 10 s" % dst)
                t_eml = time.monotonic() - t0
                if eml.endswith(".eml") and not eml.startswith("."):
                    with open(os.path.join(maildir, eml), "rb") as f:
                        if org.encode() in f.read():
                            break
            # The state row is written after the alert is queued: polled
            # from here, every 2 ms.
            while not conn.execute(
                "SELECT 1 FROM tokens WHERE path = ? AND present = 1", (dst,)
            ).fetchone():
                if time.monotonic() > deadline:
                    raise RuntimeError("%s not in the state within 10 s" % dst)
                time.sleep(0.002)
            t_state = time.monotonic() - t0
            emit(run=i, inotify_s=t_inotify, state_s=t_state, eml_s=t_eml, eml=eml)
            # Let the loop go quiet so runs do not overlap.
            time.sleep(1.5)
        conn.close()
    finally:
        for w in watches:
            w.stop()
        d.stop()


class SmtpSink:
    """Accepts every mail on 127.0.0.1:0 and records its Message-ID."""

    def __init__(self):
        self.ids = []
        self.first_at = None
        self.last_at = None
        self.lock = threading.Lock()
        self.loop = asyncio.new_event_loop()
        started = threading.Event()

        def run():
            asyncio.set_event_loop(self.loop)
            self.server = self.loop.run_until_complete(asyncio.start_server(self.session, "127.0.0.1", 0))
            self.port = self.server.sockets[0].getsockname()[1]
            started.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        started.wait()

    async def session(self, reader, writer):
        async def say(line):
            writer.write(line.encode() + b"\r\n")
            await writer.drain()

        try:
            await say("220 sink ESMTP")
            while True:
                line = await reader.readline()
                if not line:
                    break
                verb = line[:4].upper()
                if verb in (b"EHLO", b"HELO"):
                    await say("250 sink")
                elif verb in (b"MAIL", b"RCPT", b"RSET", b"NOOP"):
                    await say("250 OK")
                elif verb == b"DATA":
                    await say("354 go ahead")
                    data = await reader.readuntil(b"\r\n.\r\n")
                    mid = None
                    for h in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
                        if h.lower().startswith(b"message-id:"):
                            mid = h.split(b":", 1)[1].strip().decode()
                    with self.lock:
                        now = time.monotonic()
                        self.first_at = self.first_at or now
                        self.last_at = now
                        self.ids.append(mid)
                    await say("250 queued")
                elif verb == b"QUIT":
                    await say("221 bye")
                    break
                else:
                    await say("502 not implemented")
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def count(self):
        with self.lock:
            return len(self.ids)

    def stop(self):
        self.loop.call_soon_threadsafe(self.loop.stop)


class WebhookSink:
    """An HTTP/1.1 server on 127.0.0.1:0 (keep-alive, a thread per
    connection) that answers every POST 200 and records its
    Idempotency-Key."""

    def __init__(self):
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        sink = self
        self.ids = []
        self.first_at = None
        self.lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(n)
                key = self.headers.get("Idempotency-Key")
                with sink.lock:
                    sink.first_at = sink.first_at or time.monotonic()
                    sink.ids.append(key)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def count(self):
        with self.lock:
            return len(self.ids)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def webhook_config(path, port):
    """The generated config with alerts going to one webhook on
    127.0.0.1:`port` only (no mail)."""
    with open(path) as f:
        text = f.read()
    text = text.replace(
        'recipients = ["ops@example.com"]',
        'recipients = []\nwebhooks = ["bench"]',
    )
    text += '\n[[webhook]]\nname = "bench"\nurl = "http://127.0.0.1:%d/hook"\n' % port
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)


def cmd_alerts(a):
    """N tokens all due an alert at first sight -> delivered by SMTP to
    a sink on 127.0.0.1 (`--channel smtp`, each counted by Message-ID) or
    posted to a webhook receiver on 127.0.0.1 (`--channel webhook`, each
    counted by Idempotency-Key)."""
    for i in range(a.runs):
        sink = SmtpSink() if a.channel == "smtp" else WebhookSink()
        data = tempfile.mkdtemp(prefix="twalerts", dir=a.workdir)
        smtp = ["--smtp-port", str(sink.port)] if a.channel == "smtp" else []
        subprocess.run(
            [
                a.gen, "--out", data, "--tokens", str(a.tokens), "--folders", "1",
                "--malformed-percent", "0", "--expiring-within", "25",
                "--max-mails-per-pass", str(a.tokens + 500),
                "--seed", str(100 + i),
            ]
            + smtp,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        cfg = os.path.join(data, "tokenwatch.toml")
        if a.channel == "webhook":
            webhook_config(cfg, sink.port)
        d = Daemon(a.tw, cfg, a.log)
        try:
            deadline = d.t_spawn + a.timeout
            while sink.count() < a.tokens and time.monotonic() < deadline:
                time.sleep(0.01)
            all_at = time.monotonic() - d.t_spawn
            # Anything sent twice would arrive right behind.
            time.sleep(3)
            with sink.lock:
                ids = list(sink.ids)
            emit(
                run=i,
                channel=a.channel,
                expected=a.tokens,
                received=len(ids),
                distinct=len(set(ids)),
                all_delivered_s=all_at if len(set(ids)) >= a.tokens else None,
                first_s=(sink.first_at - d.t_spawn) if sink.first_at else None,
            )
        finally:
            d.stop()
            sink.stop()
            shutil.rmtree(data, ignore_errors=True)


class NotifyLog:
    """Every datagram the daemon sends to its NOTIFY_SOCKET, with its
    arrival time (monotonic), read on a thread of its own so that no ping
    waits for the script."""

    def __init__(self, d):
        self.d = d
        self.msgs = []
        self.lock = threading.Lock()
        self.ready = threading.Event()
        self.ready_at = None
        self.done = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        self.d.sock.settimeout(0.2)
        while not self.done:
            try:
                msg = self.d.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                break
            t = time.monotonic()
            lines = msg.split(b"\n")
            with self.lock:
                self.msgs.append((t, lines))
            if b"READY=1" in lines and self.ready_at is None:
                self.ready_at = t
                self.ready.set()

    def times(self, what):
        with self.lock:
            return [t for t, lines in self.msgs if any(l == what or l.startswith(what) for l in lines)]

    def stop(self):
        self.done = True
        self.thread.join()


def log_problems(path, start):
    """WARN and ERROR lines the daemon logged since `start` (bytes): their
    count by level and the distinct messages (timestamps and fields cut),
    and the `pass done` lines' fields."""
    counts = {"WARN": 0, "ERROR": 0}
    distinct = {}
    passes = []
    with open(path, "rb") as f:
        f.seek(start)
        for raw in f:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            parts = line.split(None, 3)
            if len(parts) < 4:
                continue
            level, rest = parts[1], parts[3]
            if level in counts:
                counts[level] += 1
                # "target: message field=..." -> "target: message"
                key = level + " " + parts[2] + " " + rest.split("=", 1)[0].rsplit(" ", 1)[0]
                distinct[key] = distinct.get(key, 0) + 1
            if "pass done" in rest:
                fields = {"at": f.tell()}
                for kv in rest.split():
                    k, eq, v = kv.partition("=")
                    if eq and v.isdigit():
                        fields[k] = int(v)
                passes.append(fields)
    return counts, distinct, passes


def cmd_huge(a):
    """The million-credential run: a first start (empty state) under a
    watchdog of `--watchdog-usec`, the scheduled full scan every
    `--period-min` minutes (the first fire after the daemon settled is
    measured), then `--after` seconds more of idle pings."""
    usec = a.watchdog_usec
    period = a.period_min * 60
    cfg = config_with_check(a.data, "tokenwatch-huge.toml", "0 */%d * * * *" % a.period_min)
    fresh_state(a.data)
    d = Daemon(
        a.tw, cfg, a.log,
        rust_log="info,tokenwatch::daemon=debug,tokio_cron_scheduler=warn",
        watchdog_usec=usec,
    )
    notes = NotifyLog(d)
    out = {"tokens_dir": os.path.join(a.data, "tokens"), "watchdog_usec": usec}
    try:
        deadline = d.t_spawn + a.timeout
        while not notes.ready.wait(0.5):
            if d.proc.poll() is not None:
                raise RuntimeError("daemon exited with %s before READY=1" % d.proc.returncode)
            if time.monotonic() > deadline:
                raise RuntimeError("no READY=1 within %.0f s" % a.timeout)
        out["ready_s"] = notes.ready_at - d.t_spawn
        st = d.status()
        out["rss_at_ready_mib"] = st["VmRSS"]
        out["cpu_at_ready_s"] = d.cpu_seconds()
        log("READY=1 after %.1f s, RSS %.0f MiB, peak %.0f MiB" % (out["ready_s"], st["VmRSS"], st["VmHWM"]))
        wait_settled(d, a.data, timeout=a.timeout)
        out["settled_s"] = time.monotonic() - d.t_spawn
        out["cpu_at_settled_s"] = d.cpu_seconds()
        st = d.status()
        out.update(rss_mib=st["VmRSS"], rss_anon_mib=st["RssAnon"], peak_rss_mib=st["VmHWM"])
        log("settled after %.1f s: RSS %.0f MiB (anon %.0f), peak %.0f MiB"
            % (out["settled_s"], st["VmRSS"], st["RssAnon"], st["VmHWM"]))
        # The scheduled pass's own peak: reset VmHWM (same user may).
        try:
            with open("/proc/%d/clear_refs" % d.proc.pid, "w") as f:
                f.write("5")
            hwm_reset = True
        except OSError:
            hwm_reset = False

        # The next fire of the schedule at least 5 s away (wall clock, as
        # the schedule), then CPU polled every 0.25 s until it stops.
        now = time.time()
        fire = (int(now + 5) // period + 1) * period
        fire_mono = time.monotonic() + (fire - now)
        log("waiting %.0f s for the scheduled full scan" % (fire - now))
        time.sleep(max(0.0, fire_mono - 3 - time.monotonic()))
        d.log.flush()
        log_at_fire = os.path.getsize(a.log)
        c_before, t_before = d.cpu_seconds(), time.monotonic()
        seq0 = read_db(a.data, "SELECT scan_seq FROM daemon_status WHERE id = 1")
        time.sleep(max(0.0, fire_mono - time.monotonic()))
        c_fire, t_fire = d.cpu_seconds(), time.monotonic()
        idle_rate = (c_fire - c_before) / max(1e-3, t_fire - t_before)
        last_c, last_t, seq_at = c_fire, t_fire, None
        while True:
            time.sleep(0.25)
            c, t = d.cpu_seconds(), time.monotonic()
            if seq_at is None:
                seq = read_db(a.data, "SELECT scan_seq FROM daemon_status WHERE id = 1")
                if seq != seq0:
                    seq_at = t
            if c - last_c > 0.01:
                last_c, last_t = c, t
            elif seq_at is not None and t - last_t >= 2.0:
                break
            if t - t_fire > a.timeout:
                raise RuntimeError("the scheduled pass did not end within %.0f s" % a.timeout)
        st = d.status()
        out.update(
            scheduled_wall_s=last_t - t_fire,
            scheduled_recorded_s=seq_at - t_fire,
            scheduled_cpu_s=max(0.0, last_c - c_fire - idle_rate * (last_t - t_fire)),
            rss_after_scheduled_mib=st["VmRSS"],
            rss_anon_after_scheduled_mib=st["RssAnon"],
            peak_rss_scheduled_mib=st["VmHWM"] if hwm_reset else None,
        )
        log("scheduled pass: %.1f s wall, %.1f s CPU, RSS after %.0f MiB, its peak %s MiB"
            % (out["scheduled_wall_s"], out["scheduled_cpu_s"], st["VmRSS"], out["peak_rss_scheduled_mib"]))
        time.sleep(a.after)
        t_end = time.monotonic()
        st = d.status()
        out.update(rss_end_mib=st["VmRSS"], window_s=t_end - d.t_spawn)
        snap = read_db(a.data, "SELECT length(snapshot_json) FROM daemon_status WHERE id = 1")
        out["snapshot_mib"] = (snap or 0) / 1048576.0
        out["tokens_in_state"] = read_db(a.data, "SELECT count(*) FROM tokens")
        db = db_path(a.data)
        out["state_mib"] = sum(os.path.getsize(p) for p in (db, db + "-wal") if os.path.exists(p)) / 1048576.0
    finally:
        notes.stop()
        alive = d.proc.poll() is None
        d.stop()
    pings = notes.times(b"WATCHDOG=1")
    points = [d.t_spawn] + pings + [t_end]
    gaps = [(b - a_, a_ - d.t_spawn) for a_, b in zip(points, points[1:])]
    worst = max(gaps)
    ready_at = notes.ready_at
    out.update(
        alive_at_end=alive,
        pings=len(pings),
        pings_before_ready=sum(1 for t in pings if t < ready_at),
        extends_before_ready=sum(1 for t in notes.times(b"EXTEND_TIMEOUT_USEC=") if t < ready_at),
        max_gap_s=worst[0],
        max_gap_from_s=worst[1],
        max_gap_before_ready_s=max(g for g, at in gaps if at < ready_at - d.t_spawn),
        gaps_over_watchdog=sum(1 for g, _ in gaps if g > usec / 1e6),
    )
    counts, distinct, passes = log_problems(a.log, d.log_start)
    # The first pass logged after the scheduled scan fired is its pass.
    scheduled = [p for p in passes if p["at"] > log_at_fire][:1]
    out.update(
        log_warn=counts["WARN"],
        log_error=counts["ERROR"],
        log_distinct=distinct,
        passes=passes,
        first_pass=passes[0] if passes else None,
        scheduled_pass=scheduled[0] if scheduled else None,
    )
    emit(**out)


def emit(**kw):
    print(json.dumps(kw), flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tw", required=True, help="the tokenwatch binary")
    p.add_argument("--log", default="/dev/null", help="append the daemon's log here")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("startup")
    s.add_argument("--data", required=True)
    s.add_argument("--runs", type=int, default=5)
    s.add_argument("--fresh", action="store_true", help="empty state before every run (first start)")
    s = sub.add_parser("idle")
    s.add_argument("--data", required=True)
    s.add_argument("--seconds", type=float, default=300)
    s = sub.add_parser("pollidle")
    s.add_argument("--data", required=True)
    s.add_argument("--seconds", type=float, default=60)
    s = sub.add_parser("rescan")
    s.add_argument("--data", required=True)
    s.add_argument("--runs", type=int, default=5)
    s = sub.add_parser("latency")
    s.add_argument("--data", required=True)
    s.add_argument("--runs", type=int, default=20)
    s = sub.add_parser("alerts")
    s.add_argument("--gen", required=True, help="the gen_tokens example binary")
    s.add_argument("--workdir", required=True)
    s.add_argument("--tokens", type=int, default=1000)
    s.add_argument("--runs", type=int, default=3)
    s.add_argument("--timeout", type=float, default=60)
    s.add_argument("--channel", choices=["smtp", "webhook"], default="smtp")
    s = sub.add_parser("huge")
    s.add_argument("--data", required=True)
    s.add_argument("--watchdog-usec", type=int, default=60_000_000)
    s.add_argument("--period-min", type=int, default=5, help="the scheduled full scan every N minutes")
    s.add_argument("--after", type=float, default=70, help="seconds of idle pings after the scheduled pass")
    s.add_argument("--timeout", type=float, default=1800)
    a = p.parse_args()
    {
        "startup": cmd_startup,
        "idle": cmd_idle,
        "pollidle": cmd_pollidle,
        "rescan": cmd_rescan,
        "latency": cmd_latency,
        "alerts": cmd_alerts,
        "huge": cmd_huge,
    }[a.cmd](a)


if __name__ == "__main__":
    main()
