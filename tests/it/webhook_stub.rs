//! A local webhook receiver for tests: 127.0.0.1, port 0, its own runtime.
//! Records every POST (path, headers, body, when it arrived) and answers
//! with a scripted status: a queue of answers first, then the default.

// Helpers here serve several test modules; not every one uses all.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;

/// One request as received.
#[derive(Debug, Clone)]
pub struct Post {
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// When it was received.
    pub at: Instant,
    /// The status it was answered with.
    pub status: u16,
}

impl Post {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

#[derive(Default)]
struct Script {
    posts: Vec<Post>,
    /// Status and `Retry-After` value of the next answers.
    queue: VecDeque<(u16, Option<String>)>,
    default: u16,
}

pub struct WebhookStub {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    state: Arc<Mutex<Script>>,
    _runtime: tokio::runtime::Runtime,
}

async fn receive(
    State(state): State<Arc<Mutex<Script>>>,
    uri: Uri,
    headers: HeaderMap,
    body: String,
) -> Response {
    let at = Instant::now();
    let mut s = state.lock().unwrap();
    let (status, retry_after) = s.queue.pop_front().unwrap_or((s.default, None));
    s.posts.push(Post {
        at,
        status,
        path: uri.path().to_owned(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
            .collect(),
        body,
    });
    let status = StatusCode::from_u16(status).unwrap();
    match retry_after {
        Some(r) => (status, [("retry-after", r)]).into_response(),
        None => status.into_response(),
    }
}

impl WebhookStub {
    pub fn start() -> WebhookStub {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let state = Arc::new(Mutex::new(Script {
            default: 200,
            ..Script::default()
        }));
        let app = Router::new()
            .fallback(axum::routing::post(receive))
            .with_state(state.clone());
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        runtime.spawn(async move { axum::serve(listener, app).await });
        WebhookStub {
            base: format!("http://{addr}"),
            state,
            _runtime: runtime,
        }
    }

    /// Answer the next requests with these statuses, then the default.
    pub fn answer_next(&self, statuses: &[u16]) {
        let answers = statuses.iter().map(|s| (*s, None));
        self.state.lock().unwrap().queue.extend(answers);
    }

    /// Answer the next request with `status` and `Retry-After: value`.
    pub fn answer_next_retry_after(&self, status: u16, value: &str) {
        let answer = (status, Some(value.to_owned()));
        self.state.lock().unwrap().queue.push_back(answer);
    }

    pub fn set_default(&self, status: u16) {
        self.state.lock().unwrap().default = status;
    }

    pub fn posts(&self) -> Vec<Post> {
        self.state.lock().unwrap().posts.clone()
    }

    /// Waits until `n` requests have arrived; panics after `secs`.
    pub fn wait_for_posts(&self, n: usize, secs: u64) -> Vec<Post> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let posts = self.posts();
            if posts.len() >= n {
                return posts;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {n} webhook posts; got {}: {posts:#?}",
                posts.len()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
