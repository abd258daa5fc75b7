//! A local stand-in for Apple's Apps and Books API, for probe and daemon
//! tests. It serves `{base_url}/client/config` on 127.0.0.1 (port 0) and
//! answers each bearer token with a scripted [`Reply`].
//!
//! Any other request (another method, another path, a query) is a
//! violation: a POST to `/client/config` would steal a real token from its
//! MDM, so the stub answers 405, records it, and the test fails when the
//! stub is dropped (or at [`AppleStub::assert_only_get_config`]).
//!
//! ```ignore
//! let stub = AppleStub::start().await;
//! stub.respond("tokenA", Reply::error(401, 9625, "The server has revoked the sToken."));
//! // point tokenwatch at stub.base_url ...
//! stub.wait_for_requests(1).await;
//! stub.assert_only_get_config();
//! ```

// Helpers here serve the daemon tests too; not every test module uses all.
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::response::Response;
use axum::Router;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

/// The path prefix of Apple's real base URL, kept so tests prove the
/// client appends `/client/config` to the base path instead of replacing it.
pub const BASE_PATH: &str = "/mdm/v2";
const CONFIG_PATH: &str = "/mdm/v2/client/config";
/// How long [`AppleStub::wait_for_requests`] waits before failing the test.
const WAIT_DEADLINE: Duration = Duration::from_secs(15);

/// One scripted answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Wait this long before answering (to provoke client timeouts).
    pub delay: Option<Duration>,
    /// Replace [`REQUEST`] in the body with the request line and every
    /// header as received (JSON-escaped in a JSON body), like a careless
    /// server echoing what it was sent.
    pub echo: bool,
}

/// Stands for the whole request in the body of an [`Reply::echoing`] reply.
pub const REQUEST: &str = "{REQUEST}";

impl Reply {
    /// HTTP `status` with a JSON body.
    pub fn json(status: u16, body: serde_json::Value) -> Reply {
        Reply::raw(status, "application/json", body.to_string())
    }

    /// 200 with a success body (`GET /client/config` of a valid token).
    pub fn config(body: serde_json::Value) -> Reply {
        Reply::json(200, body)
    }

    /// A success body with every field tokenwatch reads, as in Apple's
    /// documentation examples.
    pub fn valid(location: &str, uid: &str, expires: &str) -> Reply {
        Reply::config(serde_json::json!({
            "countryISO2ACode": "DE",
            "defaultPlatform": "volumestore",
            "locationName": location,
            "uId": uid,
            "websiteURL": "https://business.apple.com",
            "tokenExpirationDate": expires,
            "mdmInfo": { "id": "mdm-7", "name": "Example MDM", "metadata": "{}" },
            "notificationTypes": [],
        }))
    }

    /// Apple's error shape, `{"errorNumber": n, "errorMessage": m}`, with
    /// the given HTTP status (Apple uses 200 as well as 401).
    pub fn error(status: u16, error_number: i64, message: &str) -> Reply {
        Reply::json(
            status,
            serde_json::json!({ "errorNumber": error_number, "errorMessage": message }),
        )
    }

    /// Any status and body, e.g. an HTML error page.
    pub fn raw(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Reply {
        Reply {
            status,
            headers: vec![("content-type".into(), content_type.into())],
            body: body.into(),
            delay: None,
            echo: false,
        }
    }

    /// An empty body with this status.
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            delay: None,
            echo: false,
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn delay(mut self, d: Duration) -> Reply {
        self.delay = Some(d);
        self
    }

    /// Fills [`REQUEST`] in the body with the request as received.
    pub fn echoing(mut self) -> Reply {
        self.echo = true;
        self
    }
}

/// What the stub saw of one request.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// The whole `Authorization` header, if any.
    pub authorization: Option<String>,
    /// The token after `Bearer `, if the header had that form.
    pub bearer: Option<String>,
    /// All headers, names lower case, values lossily decoded.
    pub headers: Vec<(String, String)>,
}

#[derive(Default)]
struct Script {
    /// Per bearer: replies in order; the last one repeats.
    replies: HashMap<String, VecDeque<Reply>>,
    default: Option<Reply>,
    requests: Vec<RecordedRequest>,
    violations: Vec<String>,
}

struct Shared {
    script: Mutex<Script>,
    /// Number of requests seen, for waiting without polling.
    seen: watch::Sender<usize>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Script> {
        // A test that panicked while holding the lock must not hide its
        // own failure behind a poison error in another test's drop.
        self.script.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub struct AppleStub {
    /// `http://127.0.0.1:PORT/mdm/v2`: put this in `[apple] base_url`.
    pub base_url: String,
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

/// A one-worker runtime for a stand-in that sync tests use: the stand-in
/// serves on it while the test thread blocks on the binary.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

impl AppleStub {
    /// [`start`](Self::start) on a [`runtime`] of its own, for sync tests;
    /// the stand-in serves while the runtime lives.
    pub fn start_on_own_runtime() -> (tokio::runtime::Runtime, AppleStub) {
        let rt = runtime();
        let stub = rt.block_on(AppleStub::start());
        (rt, stub)
    }

    /// Binds 127.0.0.1:0 and starts serving; ready when this returns. An
    /// unscripted bearer gets 401 with errorNumber 9622, as Apple answers
    /// a made-up token.
    pub async fn start() -> AppleStub {
        let listener = bind().await;
        let addr = listener
            .local_addr()
            .expect("local address of the stand-in");
        Self::serve(listener, format!("http://{addr}{BASE_PATH}"), addr)
    }

    /// The same over HTTPS with `acceptor`'s certificate (`base_url` is
    /// `https://127.0.0.1:PORT/mdm/v2`). A client that refuses the
    /// certificate never gets past the handshake, so it is never recorded.
    pub async fn start_tls(acceptor: TlsAcceptor) -> AppleStub {
        let tcp = bind().await;
        let addr = tcp.local_addr().expect("local address of the stand-in");
        let listener = TlsListener { tcp, acceptor };
        Self::serve(listener, format!("https://{addr}{BASE_PATH}"), addr)
    }

    fn serve<L>(listener: L, base_url: String, addr: SocketAddr) -> AppleStub
    where
        L: axum::serve::Listener<Addr = SocketAddr>,
    {
        let (seen, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            script: Mutex::new(Script::default()),
            seen,
        });
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let server = tokio::spawn(async move {
            // Ends only when the task is aborted on drop.
            let _ = axum::serve(listener, app).await;
        });
        AppleStub {
            base_url,
            addr,
            shared,
            server,
        }
    }

    /// From now on, answer `bearer` with `reply`.
    pub fn respond(&self, bearer: &str, reply: Reply) {
        self.respond_sequence(bearer, vec![reply]);
    }

    /// Answer `bearer` with these replies in order; the last one repeats.
    pub fn respond_sequence(&self, bearer: &str, replies: Vec<Reply>) {
        assert!(
            !replies.is_empty(),
            "respond_sequence needs at least one reply"
        );
        self.shared
            .lock()
            .replies
            .insert(bearer.to_owned(), replies.into());
    }

    /// The answer for bearers without a script.
    pub fn set_default(&self, reply: Reply) {
        self.shared.lock().default = Some(reply);
    }

    /// Every request so far, including violations, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().requests.clone()
    }

    /// How many requests carried this bearer.
    pub fn requests_for(&self, bearer: &str) -> usize {
        self.shared
            .lock()
            .requests
            .iter()
            .filter(|r| r.bearer.as_deref() == Some(bearer))
            .count()
    }

    pub fn violations(&self) -> Vec<String> {
        self.shared.lock().violations.clone()
    }

    /// Returns and forgets the violations, for a test that provokes one on
    /// purpose.
    pub fn take_violations(&self) -> Vec<String> {
        std::mem::take(&mut self.shared.lock().violations)
    }

    /// Fails the test if any request was not `GET {base}/client/config`.
    pub fn assert_only_get_config(&self) {
        let v = self.violations();
        assert!(
            v.is_empty(),
            "the Apple stand-in got forbidden requests: {v:#?}"
        );
    }

    /// Waits until at least `n` requests arrived in total; fails the test
    /// after a deadline.
    pub async fn wait_for_requests(&self, n: usize) {
        let mut rx = self.shared.seen.subscribe();
        let waited = tokio::time::timeout(WAIT_DEADLINE, rx.wait_for(|seen| *seen >= n)).await;
        let seen = *self.shared.seen.borrow();
        assert!(
            matches!(waited, Ok(Ok(_))),
            "waited {WAIT_DEADLINE:?} for {n} requests to the Apple stand-in, got {seen}: {:#?}",
            self.requests()
        );
    }
}

async fn bind() -> tokio::net::TcpListener {
    tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the Apple stand-in on 127.0.0.1:0")
}

/// Accepts TCP connections and completes the TLS handshake; connections
/// whose handshake fails are dropped.
struct TlsListener {
    tcp: tokio::net::TcpListener,
    acceptor: TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, addr)) = self.tcp.accept().await else {
                continue;
            };
            if let Ok(tls) = self.acceptor.accept(tcp).await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

impl Drop for AppleStub {
    fn drop(&mut self) {
        self.server.abort();
        if !std::thread::panicking() {
            self.assert_only_get_config();
        }
    }
}

async fn handle(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let header_text = |v: &HeaderValue| String::from_utf8_lossy(v.as_bytes()).into_owned();
    let mut request_text = format!("{} {} {:?}\r\n", req.method(), req.uri(), req.version());
    for (name, value) in req.headers() {
        request_text.push_str(&format!("{name}: {}\r\n", header_text(value)));
    }
    let authorization = req.headers().get("authorization").map(header_text);
    let recorded = RecordedRequest {
        method: req.method().to_string(),
        path: req.uri().path().to_owned(),
        query: req.uri().query().map(str::to_owned),
        bearer: authorization
            .as_deref()
            .and_then(|a| a.strip_prefix("Bearer "))
            .map(str::to_owned),
        authorization,
        headers: req
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), header_text(v)))
            .collect(),
    };

    let violation = if req.method() != Method::GET {
        Some(format!(
            "{} {} (only GET is allowed)",
            recorded.method, recorded.path
        ))
    } else if recorded.path != CONFIG_PATH {
        Some(format!(
            "GET {} (only {CONFIG_PATH} is allowed)",
            recorded.path
        ))
    } else {
        recorded
            .query
            .as_ref()
            .map(|q| format!("GET {}?{q} (no query expected)", recorded.path))
    };

    let reply = {
        let mut script = shared.lock();
        let reply = if let Some(v) = violation {
            script.violations.push(v);
            Reply::status(405)
        } else {
            let scripted = recorded
                .bearer
                .as_ref()
                .and_then(|b| script.replies.get_mut(b))
                .map(|queue| {
                    if queue.len() > 1 {
                        queue.pop_front().unwrap_or_else(|| Reply::status(500))
                    } else {
                        queue.front().cloned().unwrap_or_else(|| Reply::status(500))
                    }
                });
            scripted
                .or_else(|| script.default.clone())
                .unwrap_or_else(|| Reply::error(401, 9622, "Invalid authentication token"))
        };
        script.requests.push(recorded);
        shared.seen.send_replace(script.requests.len());
        reply
    };

    if let Some(d) = reply.delay {
        tokio::time::sleep(d).await;
    }
    let body = if reply.echo {
        let json = reply
            .headers
            .iter()
            .any(|(n, v)| n.eq_ignore_ascii_case("content-type") && v.contains("json"));
        let echoed = if json {
            let quoted = serde_json::to_string(&request_text).unwrap_or_default();
            quoted[1..quoted.len() - 1].to_owned()
        } else {
            request_text
        };
        String::from_utf8_lossy(&reply.body)
            .replace(REQUEST, &echoed)
            .into_bytes()
    } else {
        reply.body
    };
    let mut response = Response::new(Body::from(Bytes::from(body)));
    *response.status_mut() =
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in &reply.headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::try_from(name.as_str()),
            HeaderValue::from_str(value),
        ) {
            response.headers_mut().append(n, v);
        }
    }
    response
}
