//! An in-process SMTP server for tests, on 127.0.0.1 with a free port.
//!
//! It records every accepted message (envelope and raw data), can demand
//! AUTH PLAIN/LOGIN with a fixed user and password, can speak STARTTLS or
//! implicit TLS with a freshly generated CA (rcgen, ring), can be told to
//! answer 4xx or 5xx, and can be stopped and restarted on the same port.
//!
//! Why not `mailin-embedded`: its `serve()` never returns and keeps the
//! listener, so the port cannot be closed ("SMTP down") and re-opened; its
//! TLS needs OpenSSL or rustls with aws-lc; and without TLS it does not even
//! compile (`default-features = false` leaves its rustls module without
//! rustls). This responder is small and fully under the tests' control.
//!
//! The server runs on its own thread with its own tokio runtime, so it
//! keeps answering while a test blocks (e.g. waiting for a child process).

#![allow(dead_code)] // a shared helper: not every test module uses every call

use std::io;
use std::net::{SocketAddr, TcpListener as StdTcpListener};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use base64::Engine as _;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;

/// How the stub answers mail transactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// 250 and record.
    Accept,
    /// 451 after the message data.
    Tempfail,
    /// 554 after the message data.
    Reject,
    /// 451 to every RCPT.
    TempfailRcpt,
    /// 550 to every RCPT.
    RejectRcpt,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StubTls {
    None,
    StartTls,
    Implicit,
}

/// One message the stub accepted.
#[derive(Debug, Clone)]
pub struct Received {
    pub from: String,
    pub to: Vec<String>,
    /// The message as sent, dot-unstuffed, CRLF line ends, without the
    /// final `.` line.
    pub data: Vec<u8>,
    /// The user that authenticated on this connection, if any.
    pub auth_user: Option<String>,
    /// Whether the message came over TLS.
    pub tls: bool,
}

impl Received {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.data).into_owned()
    }
}

pub struct StubBuilder {
    tls: StubTls,
    auth: Option<(String, String)>,
    mechanisms: Vec<&'static str>,
}

impl StubBuilder {
    pub fn starttls(mut self) -> Self {
        self.tls = StubTls::StartTls;
        self
    }

    pub fn implicit_tls(mut self) -> Self {
        self.tls = StubTls::Implicit;
        self
    }

    /// Require authentication with this user and password before MAIL.
    /// AUTH is offered only over TLS when the stub has TLS, like Postfix
    /// with `smtpd_tls_auth_only`.
    pub fn auth(mut self, user: &str, password: &str) -> Self {
        self.auth = Some((user.to_owned(), password.to_owned()));
        self
    }

    /// Offer AUTH LOGIN only (the default offers PLAIN and LOGIN).
    pub fn login_only(mut self) -> Self {
        self.mechanisms = vec!["LOGIN"];
        self
    }

    pub fn start(self) -> SmtpStub {
        let (acceptor, ca_pem) = match self.tls {
            StubTls::None => (None, None),
            StubTls::StartTls | StubTls::Implicit => {
                let (acceptor, ca) = tls_acceptor();
                (Some(acceptor), Some(ca))
            }
        };
        let shared = Arc::new(Shared {
            tls: self.tls,
            auth: self.auth,
            mechanisms: self.mechanisms,
            acceptor,
            mode: Mutex::new(Mode::Accept),
            delay: Mutex::new(Duration::ZERO),
            data_delay: Mutex::new(Duration::ZERO),
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            notify: tokio::sync::Notify::new(),
        });
        let listener = StdTcpListener::bind("127.0.0.1:0").expect("stub: bind 127.0.0.1:0");
        let port = listener.local_addr().expect("stub: local addr").port();
        let running = Some(Running::spawn(listener, Arc::clone(&shared)));
        SmtpStub {
            port,
            shared,
            ca_pem,
            running,
        }
    }
}

pub struct SmtpStub {
    pub port: u16,
    shared: Arc<Shared>,
    ca_pem: Option<String>,
    running: Option<Running>,
}

impl SmtpStub {
    /// A plain stub (no TLS, no AUTH), accepting everything. The port is
    /// bound before this returns, so connections succeed right away.
    pub fn start() -> SmtpStub {
        Self::builder().start()
    }

    pub fn builder() -> StubBuilder {
        StubBuilder {
            tls: StubTls::None,
            auth: None,
            mechanisms: vec!["PLAIN", "LOGIN"],
        }
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The PEM of the CA that signed the stub's certificate (valid for
    /// `localhost` and `127.0.0.1`).
    pub fn ca_pem(&self) -> &str {
        self.ca_pem
            .as_deref()
            .expect("stub started without TLS has no CA")
    }

    /// Writes the CA to `dir/stub-ca.pem` for use as `ca_file`.
    pub fn write_ca(&self, dir: &Path) -> PathBuf {
        let path = dir.join("stub-ca.pem");
        std::fs::write(&path, self.ca_pem()).expect("stub: write CA file");
        path
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.shared.mode.lock().unwrap_or_else(|e| e.into_inner()) = mode;
    }

    /// How long the stub waits, after it has recorded a message, before it
    /// answers 250: a client killed in this window never learns that its
    /// mail was accepted (the crash-torture duplicate).
    pub fn set_delay(&self, delay: Duration) {
        *self.shared.delay.lock().unwrap_or_else(|e| e.into_inner()) = delay;
    }

    /// How long the stub waits before it answers the DATA command (354): a
    /// slow server, with the mail in flight but not yet accepted, so a client
    /// killed in this window sends it again without a duplicate.
    pub fn set_data_delay(&self, delay: Duration) {
        *self
            .shared
            .data_delay
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = delay;
    }

    pub fn messages(&self) -> Vec<Received> {
        self.shared.state().messages.clone()
    }

    /// Mail transactions begun (MAIL received) within `begun` and not
    /// answered after their data by `until`, or never (the connection ended
    /// first). With `begun` ending when a client was killed and `until`
    /// after it died: the mails it died with in flight.
    pub fn open_across(&self, begun: std::ops::Range<Instant>, until: Instant) -> usize {
        self.shared
            .state()
            .transactions
            .iter()
            .filter(|t| begun.contains(&t.begun) && t.answered.is_none_or(|a| a > until))
            .count()
    }

    /// Blocks until a transaction begun after `since` is open, or `timeout`
    /// passes; whether one is.
    pub fn wait_for_open(&self, since: Instant, timeout: Duration) -> bool {
        let open = |state: &State| {
            state
                .transactions
                .iter()
                .any(|t| t.begun > since && t.answered.is_none())
        };
        open(&self.shared.wait_until(Instant::now() + timeout, open))
    }

    /// Connections accepted so far (over all restarts).
    pub fn connections(&self) -> usize {
        self.shared.state().connections
    }

    /// Failed AUTH attempts so far.
    pub fn auth_failures(&self) -> usize {
        self.shared.state().auth_failures
    }

    /// Blocks until at least `n` messages arrived; panics after `timeout`
    /// saying how many came.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let state = self
            .shared
            .wait_until(Instant::now() + timeout, |state| state.messages.len() >= n);
        if state.messages.len() < n {
            panic!(
                "SMTP stub on port {}: expected {n} messages within {timeout:?}, got {}",
                self.port,
                state.messages.len()
            );
        }
        state.messages.clone()
    }

    /// [`wait_for`](Self::wait_for) for async tests (does not block the
    /// runtime the code under test may be running on).
    pub async fn wait_for_async(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.notify.notified();
            tokio::pin!(notified);
            // Register before checking, so a message arriving in between
            // still wakes us.
            notified.as_mut().enable();
            {
                let state = self.shared.state();
                if state.messages.len() >= n {
                    return state.messages.clone();
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!(
                    "SMTP stub on port {}: expected {n} messages within {timeout:?}, got {}",
                    self.port,
                    self.shared.state().messages.len()
                );
            }
        }
    }

    /// Closes the port and drops open connections: clients now get
    /// "connection refused". Returns once the port is closed.
    pub fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            running.stop();
        }
    }

    /// Listens again on the same port, keeping recorded messages and mode.
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + Duration::from_secs(10);
        let listener = loop {
            match StdTcpListener::bind(self.addr()) {
                Ok(l) => break l,
                // The port is busy only while the kernel still holds it;
                // poll for it with a deadline.
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Err(e) => panic!("SMTP stub: cannot re-bind port {}: {e}", self.port),
            }
        };
        self.running = Some(Running::spawn(listener, Arc::clone(&self.shared)));
    }
}

impl Drop for SmtpStub {
    fn drop(&mut self) {
        self.stop();
    }
}

struct Running {
    stop: tokio::sync::oneshot::Sender<()>,
    thread: JoinHandle<()>,
}

impl Running {
    fn spawn(listener: StdTcpListener, shared: Arc<Shared>) -> Running {
        listener
            .set_nonblocking(true)
            .expect("stub: set listener non-blocking");
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("stub: tokio runtime");
            rt.block_on(async move {
                let listener =
                    tokio::net::TcpListener::from_std(listener).expect("stub: tokio listener");
                loop {
                    tokio::select! {
                        _ = &mut stopped => break,
                        accepted = listener.accept() => {
                            if let Ok((stream, _)) = accepted {
                                shared.state().connections += 1;
                                tokio::spawn(handle(stream, Arc::clone(&shared)));
                            }
                        }
                    }
                }
            });
            // Dropping the runtime here cancels the connection tasks, so
            // a stopped stub holds no sockets.
        });
        Running { stop, thread }
    }

    fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.thread.join();
    }
}

struct Shared {
    tls: StubTls,
    auth: Option<(String, String)>,
    mechanisms: Vec<&'static str>,
    acceptor: Option<TlsAcceptor>,
    mode: Mutex<Mode>,
    delay: Mutex<Duration>,
    data_delay: Mutex<Duration>,
    state: Mutex<State>,
    changed: Condvar,
    notify: tokio::sync::Notify,
}

#[derive(Default)]
struct State {
    messages: Vec<Received>,
    connections: usize,
    auth_failures: usize,
    transactions: Vec<Transaction>,
}

/// When one mail transaction began, and when the stub answered its data
/// (or the client gave it up with RSET, EHLO, a new MAIL or QUIT).
struct Transaction {
    begun: Instant,
    answered: Option<Instant>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for a change until `done` holds or `deadline` passes; the
    /// state at that moment, still locked.
    fn wait_until(
        &self,
        deadline: Instant,
        done: impl Fn(&State) -> bool,
    ) -> MutexGuard<'_, State> {
        let mut state = self.state();
        loop {
            let now = Instant::now();
            if done(&state) || now >= deadline {
                return state;
            }
            state = self
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    fn mode(&self) -> Mode {
        *self.mode.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn delay(&self) -> Duration {
        *self.delay.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn data_delay(&self) -> Duration {
        *self.data_delay.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Notes a transaction begun now; returns its index for [`Self::answered`].
    fn begin(&self) -> usize {
        let mut state = self.state();
        state.transactions.push(Transaction {
            begun: Instant::now(),
            answered: None,
        });
        self.changed.notify_all();
        state.transactions.len() - 1
    }

    fn answered(&self, transaction: Option<usize>) {
        if let Some(i) = transaction {
            self.state().transactions[i].answered = Some(Instant::now());
        }
    }

    fn record(&self, message: Received) {
        self.state().messages.push(message);
        self.changed.notify_all();
        self.notify.notify_waiters();
    }
}

async fn handle(stream: TcpStream, shared: Arc<Shared>) {
    let Some(acceptor) = shared.acceptor.clone() else {
        let _ = session(stream, false, true, &shared).await;
        return;
    };
    if shared.tls == StubTls::Implicit {
        if let Ok(tls) = acceptor.accept(stream).await {
            let _ = session(tls, true, true, &shared).await;
        }
        return;
    }
    if let Ok(Some(plain)) = session(stream, false, true, &shared).await {
        if let Ok(tls) = acceptor.accept(plain).await {
            let _ = session(tls, true, false, &shared).await;
        }
    }
}

/// Runs one SMTP session on `stream`. Returns the stream when the client
/// asked for STARTTLS, for the caller to wrap.
async fn session<S>(stream: S, tls: bool, greet: bool, shared: &Shared) -> io::Result<Option<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut io = BufReader::new(stream);
    if greet {
        reply(
            &mut io,
            "220 stub.tokenwatch.test ESMTP tokenwatch test stub",
        )
        .await?;
    }
    let auth_offered = shared.auth.is_some() && (tls || shared.tls == StubTls::None);
    let mut auth_user: Option<String> = None;
    let mut from: Option<String> = None;
    let mut to: Vec<String> = Vec::new();
    // Left open when the connection ends mid-transaction.
    let mut transaction: Option<usize> = None;
    loop {
        let Some(line) = read_line(&mut io).await? else {
            return Ok(None);
        };
        let (verb, arg) = match line.split_once(' ') {
            Some((v, a)) => (v.to_ascii_uppercase(), a.trim().to_owned()),
            None => (line.to_ascii_uppercase(), String::new()),
        };
        match verb.as_str() {
            "EHLO" => {
                from = None;
                to.clear();
                shared.answered(transaction.take());
                let mut lines = vec!["stub.tokenwatch.test".to_owned(), "8BITMIME".to_owned()];
                if shared.tls == StubTls::StartTls && !tls {
                    lines.push("STARTTLS".to_owned());
                }
                if auth_offered {
                    lines.push(format!("AUTH {}", shared.mechanisms.join(" ")));
                }
                lines.push("ENHANCEDSTATUSCODES".to_owned());
                let last = lines.len() - 1;
                let text: Vec<String> = lines
                    .iter()
                    .enumerate()
                    .map(|(i, l)| format!("250{}{l}", if i == last { ' ' } else { '-' }))
                    .collect();
                reply(&mut io, &text.join("\r\n")).await?;
            }
            "HELO" => reply(&mut io, "250 stub.tokenwatch.test").await?,
            "STARTTLS" if shared.tls == StubTls::StartTls && !tls => {
                reply(&mut io, "220 2.0.0 Ready to start TLS").await?;
                // Anything the client sent after STARTTLS before the
                // handshake is discarded, as RFC 3207 requires.
                return Ok(Some(io.into_inner()));
            }
            "AUTH" if auth_offered && auth_user.is_none() => {
                match authenticate(&mut io, &arg, shared).await? {
                    Some(user) => {
                        auth_user = Some(user);
                        reply(&mut io, "235 2.7.0 Authentication successful").await?;
                    }
                    None => {
                        shared.state().auth_failures += 1;
                        reply(&mut io, "535 5.7.8 Authentication credentials invalid").await?;
                    }
                }
            }
            "MAIL" => {
                if shared.auth.is_some() && auth_user.is_none() {
                    reply(&mut io, "530 5.7.0 Authentication required").await?;
                } else {
                    from = Some(angle_addr(&arg));
                    to.clear();
                    shared.answered(transaction.take());
                    transaction = Some(shared.begin());
                    reply(&mut io, "250 2.1.0 Ok").await?;
                }
            }
            "RCPT" if from.is_some() => match shared.mode() {
                Mode::TempfailRcpt => {
                    reply(&mut io, "451 4.7.1 stub: recipient temporarily refused").await?
                }
                Mode::RejectRcpt => reply(&mut io, "550 5.1.1 stub: no such recipient").await?,
                _ => {
                    to.push(angle_addr(&arg));
                    reply(&mut io, "250 2.1.5 Ok").await?;
                }
            },
            "DATA" if !to.is_empty() => {
                let data_delay = shared.data_delay();
                if !data_delay.is_zero() {
                    tokio::time::sleep(data_delay).await;
                }
                reply(&mut io, "354 End data with <CR><LF>.<CR><LF>").await?;
                let data = read_data(&mut io).await?;
                match shared.mode() {
                    Mode::Tempfail => reply(&mut io, "451 4.3.0 stub: try again later").await?,
                    Mode::Reject => reply(&mut io, "554 5.7.1 stub: message rejected").await?,
                    _ => {
                        let n = shared.state().messages.len() + 1;
                        shared.record(Received {
                            from: from.take().unwrap_or_default(),
                            to: std::mem::take(&mut to),
                            data,
                            auth_user: auth_user.clone(),
                            tls,
                        });
                        let delay = shared.delay();
                        if !delay.is_zero() {
                            tokio::time::sleep(delay).await;
                        }
                        reply(&mut io, &format!("250 2.0.0 Ok: queued as STUB{n}")).await?;
                    }
                }
                shared.answered(transaction.take());
                from = None;
                to.clear();
            }
            "RSET" => {
                from = None;
                to.clear();
                shared.answered(transaction.take());
                reply(&mut io, "250 2.0.0 Ok").await?;
            }
            "NOOP" => reply(&mut io, "250 2.0.0 Ok").await?,
            "QUIT" => {
                shared.answered(transaction.take());
                reply(&mut io, "221 2.0.0 Bye").await?;
                return Ok(None);
            }
            "RCPT" | "DATA" => reply(&mut io, "503 5.5.1 Bad sequence of commands").await?,
            "STARTTLS" | "AUTH" => reply(&mut io, "503 5.5.1 Not available now").await?,
            _ => reply(&mut io, "502 5.5.2 Command not recognized").await?,
        }
    }
}

/// Handles AUTH PLAIN and AUTH LOGIN; returns the user when the
/// credentials match.
async fn authenticate<S>(
    io: &mut BufReader<S>,
    arg: &str,
    shared: &Shared,
) -> io::Result<Option<String>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let Some((want_user, want_pass)) = &shared.auth else {
        return Ok(None);
    };
    let b64 = base64::engine::general_purpose::STANDARD;
    let decode = |s: &str| {
        b64.decode(s.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
    };
    let (mechanism, initial) = match arg.split_once(' ') {
        Some((m, i)) => (m.to_ascii_uppercase(), Some(i.to_owned())),
        None => (arg.to_ascii_uppercase(), None),
    };
    if !shared.mechanisms.contains(&mechanism.as_str()) {
        return Ok(None);
    }
    let (user, pass) = if mechanism == "PLAIN" {
        let response = match initial {
            Some(i) => i,
            None => {
                reply(io, "334 ").await?;
                read_line(io).await?.unwrap_or_default()
            }
        };
        let Some(decoded) = decode(&response) else {
            return Ok(None);
        };
        let mut parts = decoded.split('\0');
        let (_authz, user, pass) = (parts.next(), parts.next(), parts.next());
        (
            user.unwrap_or_default().to_owned(),
            pass.unwrap_or_default().to_owned(),
        )
    } else {
        let user = match initial {
            Some(i) => i,
            None => {
                reply(io, &format!("334 {}", b64.encode("Username:"))).await?;
                read_line(io).await?.unwrap_or_default()
            }
        };
        reply(io, &format!("334 {}", b64.encode("Password:"))).await?;
        let pass = read_line(io).await?.unwrap_or_default();
        (
            decode(&user).unwrap_or_default(),
            decode(&pass).unwrap_or_default(),
        )
    };
    Ok((&user == want_user && &pass == want_pass).then_some(user))
}

fn angle_addr(arg: &str) -> String {
    let start = arg.find('<').map_or(0, |i| i + 1);
    let end = arg[start..].find('>').map_or(arg.len(), |i| start + i);
    arg[start..end].to_owned()
}

async fn reply<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut BufReader<S>,
    text: &str,
) -> io::Result<()> {
    // One write per reply: a reply split over two writes meets Nagle's
    // algorithm and the client's delayed ACK, 40 ms per reply.
    let stream = io.get_mut();
    let mut line = Vec::with_capacity(text.len() + 2);
    line.extend_from_slice(text.as_bytes());
    line.extend_from_slice(b"\r\n");
    stream.write_all(&line).await?;
    stream.flush().await
}

/// One command line without its line end; `None` at EOF.
async fn read_line<S: AsyncRead + Unpin>(io: &mut BufReader<S>) -> io::Result<Option<String>> {
    let mut buf = Vec::new();
    if io.read_until(b'\n', &mut buf).await? == 0 {
        return Ok(None);
    }
    let text = String::from_utf8_lossy(&buf);
    Ok(Some(text.trim_end_matches(['\r', '\n']).to_owned()))
}

/// The message after DATA, up to the lone `.` line, dot-unstuffed.
async fn read_data<S: AsyncRead + Unpin>(io: &mut BufReader<S>) -> io::Result<Vec<u8>> {
    let mut data = Vec::new();
    loop {
        let mut line = Vec::new();
        if io.read_until(b'\n', &mut line).await? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed during DATA",
            ));
        }
        if line == b".\r\n" || line == b".\n" {
            return Ok(data);
        }
        let body = line.strip_prefix(b".").unwrap_or(&line);
        data.extend_from_slice(body);
    }
}

/// A fresh CA and a server certificate for localhost/127.0.0.1 signed by
/// it; returns the acceptor and the CA's PEM.
pub(crate) fn tls_acceptor() -> (TlsAcceptor, String) {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };

    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("stub CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "tokenwatch test stub CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate().expect("stub CA key");
    let ca_cert = ca_params.self_signed(&ca_key).expect("stub CA cert");
    let issuer = Issuer::new(ca_params, ca_key);

    let mut params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .expect("stub server params");
    params
        .distinguished_name
        .push(DnType::CommonName, "stub.tokenwatch.test");
    let key = KeyPair::generate().expect("stub server key");
    let cert = params.signed_by(&key, &issuer).expect("stub server cert");

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("stub TLS versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .expect("stub TLS config");
    (TlsAcceptor::from(Arc::new(config)), ca_cert.pem())
}
