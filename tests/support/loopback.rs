//! The one loopback HTTP/1.1 server of the tests: bound on 127.0.0.1 with a free port, one
//! request per connection, answered by a closure (canned answers are closures that ignore the
//! request), optionally after a delay, with a log of every request it received. Also: an
//! address nobody listens on, and a server that accepts connections and never answers.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// What the server received.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    /// The request target: the path with its query.
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// A header's value (the name in any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// What the server answers (`Content-Type: application/json` unless a header says otherwise).
#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
    pub delay: Option<Duration>,
    pub headers: Vec<(String, String)>,
}

impl Response {
    pub fn json(status: u16, body: impl Into<String>) -> Self {
        Response {
            status,
            body: body.into().into_bytes(),
            delay: None,
            headers: Vec::new(),
        }
    }

    /// Answers only after `delay`.
    pub fn after(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }

    /// Adds a header to the answer.
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }
}

type Handler = Arc<dyn Fn(&Request) -> Response + Send + Sync>;

/// A running server; it stops when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    log: Arc<Mutex<Vec<Request>>>,
    task: JoinHandle<()>,
    detached: bool,
}

impl TestServer {
    /// Starts a server on 127.0.0.1 with a free port, answering every request with `handler`.
    pub async fn start(
        handler: impl Fn(&Request) -> Response + Send + Sync + 'static,
    ) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let handler: Handler = Arc::new(handler);
        let log = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&log);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let handler = handler.clone();
                let log = Arc::clone(&kept);
                tokio::spawn(async move {
                    let _ = serve(stream, handler, log).await;
                });
            }
        });
        TestServer {
            addr,
            log,
            task,
            detached: false,
        }
    }

    /// Lets the server run until the test's runtime ends; returns its address.
    pub fn detach(mut self) -> SocketAddr {
        self.detached = true;
        self.addr
    }

    /// A server answering every request with `response`.
    pub async fn canned(response: Response) -> TestServer {
        TestServer::start(move |_| response.clone()).await
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.log.lock().expect("the request log").clone()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if !self.detached {
            self.task.abort();
        }
    }
}

/// A loopback address that was free a moment ago: nothing listens there.
pub fn unused_address() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
}

/// A listener that accepts connections (the kernel's backlog does) and never answers.
pub struct Silent {
    pub addr: SocketAddr,
    _listener: std::net::TcpListener,
}

/// Starts a [`Silent`] server on a free loopback port.
pub fn silent() -> Silent {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    Silent {
        addr: listener.local_addr().expect("local addr"),
        _listener: listener,
    }
}

async fn serve(
    mut stream: TcpStream,
    handler: Handler,
    log: Arc<Mutex<Vec<Request>>>,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let header_end = loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos + 4;
        }
        if buf.len() > 64 * 1024 {
            return Ok(());
        }
    };
    let head = String::from_utf8_lossy(&buf[..header_end]).to_string();
    let mut lines = head.lines();
    let mut first = lines.next().unwrap_or_default().split_whitespace();
    let method = first.next().unwrap_or_default().to_string();
    let path = first.next().unwrap_or_default().to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.parse().ok())
        .unwrap_or(0);
    let mut body = buf[header_end..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    let request = Request {
        method,
        path,
        headers,
        body,
    };
    let response = handler(&request);
    log.lock().expect("the request log").push(request);
    if let Some(delay) = response.delay {
        tokio::time::sleep(delay).await;
    }
    let mut head = format!("HTTP/1.1 {} X\r\n", response.status);
    if !response
        .headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("content-type"))
    {
        head.push_str("Content-Type: application/json\r\n");
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n",
        response.body.len()
    ));
    for (name, value) in &response.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(&response.body).await?;
    stream.shutdown().await
}
