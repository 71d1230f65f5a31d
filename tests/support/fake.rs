//! A fake Prometheus that gives one canned answer to every request, for the answers a real
//! one never gives (garbage, oversized bodies, a stall), and records what it was sent.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use rollgate::gates::prometheus::{ClientSettings, PrometheusClient, PrometheusEndpoint};

use super::wire::{Request, read_request, write_response};

/// The answer the fake gives.
#[derive(Clone, Debug)]
pub struct Canned {
    /// HTTP status.
    pub status: u16,
    /// Body.
    pub body: Vec<u8>,
    /// Whether to send `Content-Length` (otherwise the body ends with the connection).
    pub content_length: bool,
    /// Time to wait before answering.
    pub delay: Duration,
}

impl Canned {
    /// A 200 answer with `body` and a `Content-Length`.
    pub fn ok(body: impl Into<Vec<u8>>) -> Self {
        Self {
            status: 200,
            body: body.into(),
            content_length: true,
            delay: Duration::ZERO,
        }
    }
}

/// The running fake; stops accepting when dropped.
pub struct Fake {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl Fake {
    /// Starts a fake answering `canned` on a free loopback port.
    pub fn start(canned: Canned) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind fake");
        let addr = listener.local_addr().expect("fake address");
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (stop2, requests2) = (stop.clone(), requests.clone());
        thread::spawn(move || {
            for stream in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (canned, requests) = (canned.clone(), requests2.clone());
                thread::spawn(move || answer(&stream, &canned, &requests));
            }
        });
        Self {
            addr,
            stop,
            requests,
        }
    }

    /// Base URL, `http://127.0.0.1:<port>`.
    pub fn address(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A client for the fake with `settings`.
    pub fn client(&self, settings: ClientSettings) -> PrometheusClient {
        PrometheusClient::new(
            &PrometheusEndpoint {
                address: self.address(),
                settings,
            },
            &super::loopback_policy(),
        )
        .expect("client")
    }

    /// The requests received so far.
    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
    }
}

fn answer(stream: &TcpStream, canned: &Canned, requests: &Mutex<Vec<Request>>) {
    let Ok(request) = read_request(stream) else {
        return;
    };
    if let Ok(mut requests) = requests.lock() {
        requests.push(request);
    }
    thread::sleep(canned.delay);
    let _ = write_response(
        stream,
        canned.status,
        "application/json",
        &canned.body,
        canned.content_length,
    );
}
