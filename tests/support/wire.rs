//! Just enough HTTP/1.1 for the test servers: read one request, write one response, close.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;

/// One request as received: the request line, the headers and the body, as text.
#[derive(Clone, Debug, Default)]
pub struct Request {
    /// `POST /api/v1/query HTTP/1.1`.
    pub line: String,
    /// Header lines, `Name: value`, as sent.
    pub headers: Vec<String>,
    /// The body.
    pub body: String,
}

impl Request {
    /// The value of header `name` (case-insensitive), if sent.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then_some(v.trim())
        })
    }
}

/// Reads one request (headers, and a body of `Content-Length` bytes).
pub fn read_request(stream: &TcpStream) -> io::Result<Request> {
    let mut reader = BufReader::new(stream);
    let mut request = Request::default();
    reader.read_line(&mut request.line)?;
    request.line = request.line.trim_end().to_owned();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line.trim_end().is_empty() {
            break;
        }
        request.headers.push(line.trim_end().to_owned());
    }
    let length: usize = request
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    request.body = String::from_utf8_lossy(&body).into_owned();
    Ok(request)
}

/// Writes a response and closes the connection. Without `content_length` the body ends when
/// the connection does.
pub fn write_response(
    mut stream: &TcpStream,
    status: u16,
    content_type: &str,
    body: &[u8],
    content_length: bool,
) -> io::Result<()> {
    let mut head =
        format!("HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nConnection: close\r\n");
    if content_length {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    stream.flush()
}
