//! A small app on loopback that Prometheus scrapes: `http_requests_total` by status code and
//! an `http_request_duration_seconds` histogram, both driven by the test.
//!
//! Counters grow at a rate the test sets (`set_rate`), computed from the clock at each scrape,
//! so `rate(...)` and ratios of rates come out exactly as set.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Instant;

use super::wire::{read_request, write_response};

/// Upper bounds of the histogram's buckets, in seconds (`+Inf` implied).
pub const BUCKETS: [f64; 5] = [0.05, 0.1, 0.25, 0.5, 1.0];

#[derive(Default)]
struct Counter {
    base: f64,
    per_second: f64,
    since: Option<Instant>,
}

impl Counter {
    fn value(&self, now: Instant) -> f64 {
        let elapsed = self
            .since
            .map_or(0.0, |s| now.duration_since(s).as_secs_f64());
        self.base + self.per_second * elapsed
    }
}

#[derive(Default)]
struct State {
    requests: BTreeMap<u16, Counter>,
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// The running app; stops when dropped.
pub struct App {
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    addr: SocketAddr,
}

impl App {
    /// Starts the app on a free loopback port.
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind app");
        let addr = listener.local_addr().expect("app address");
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (state2, stop2) = (state.clone(), stop.clone());
        thread::spawn(move || {
            for stream in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = stream {
                    serve(&stream, &state2);
                }
            }
        });
        Self { state, stop, addr }
    }

    /// `host:port` to scrape.
    pub fn target(&self) -> String {
        self.addr.to_string()
    }

    /// From now on, `http_requests_total{code="<code>"}` grows by `per_second` every second.
    pub fn set_rate(&self, code: u16, per_second: f64) {
        let now = Instant::now();
        let mut state = self.state.lock().expect("app state");
        let counter = state.requests.entry(code).or_default();
        counter.base = counter.value(now);
        counter.per_second = per_second;
        counter.since = Some(now);
    }

    /// Records `n` requests that each took `seconds` in the histogram.
    pub fn observe(&self, seconds: f64, n: u64) {
        let mut state = self.state.lock().expect("app state");
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                state.buckets[i] += n;
            }
        }
        state.count += n;
        state.sum += seconds * n as f64;
    }
}

impl Drop for App {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
    }
}

fn serve(stream: &TcpStream, state: &Mutex<State>) {
    if read_request(stream).is_err() {
        return;
    }
    let body = match state.lock() {
        Ok(state) => exposition(&state),
        Err(_) => return,
    };
    let _ = write_response(
        stream,
        200,
        "text/plain; version=0.0.4",
        body.as_bytes(),
        true,
    );
}

/// The metrics in Prometheus' text format.
fn exposition(state: &State) -> String {
    let now = Instant::now();
    let mut out = String::new();
    out.push_str("# HELP http_requests_total Requests by status code.\n");
    out.push_str("# TYPE http_requests_total counter\n");
    for (code, counter) in &state.requests {
        let _ = writeln!(
            out,
            "http_requests_total{{code=\"{code}\"}} {}",
            counter.value(now)
        );
    }
    out.push_str("# HELP http_request_duration_seconds Request latency.\n");
    out.push_str("# TYPE http_request_duration_seconds histogram\n");
    for (bound, count) in BUCKETS.iter().zip(state.buckets) {
        let _ = writeln!(
            out,
            "http_request_duration_seconds_bucket{{le=\"{bound}\"}} {count}"
        );
    }
    let _ = writeln!(
        out,
        "http_request_duration_seconds_bucket{{le=\"+Inf\"}} {}",
        state.count
    );
    let _ = writeln!(out, "http_request_duration_seconds_sum {}", state.sum);
    let _ = writeln!(out, "http_request_duration_seconds_count {}", state.count);
    out
}
