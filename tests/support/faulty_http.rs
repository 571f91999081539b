//! A raw-TCP HTTP server that misbehaves on purpose (for the source fault matrix): wrong
//! statuses, broken or huge bodies, no answer at all, or a body that trickles in. Raw TCP so
//! that nothing (framework buffering, automatic headers) softens the fault.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Debug, Clone)]
pub enum Behavior {
    /// A complete answer with `Content-Length`.
    Respond {
        status: u16,
        content_type: &'static str,
        body: Vec<u8>,
    },
    /// Accept, read the request, never answer.
    NeverAnswer,
    /// Headers at once (with the full `Content-Length`), then one byte per `every`.
    Trickle { body: Vec<u8>, every: Duration },
    /// A chunked answer of `bytes` bytes with no `Content-Length` (the cap must stop the stream).
    HugeChunked { bytes: usize },
}

impl Behavior {
    pub fn json(status: u16, body: &str) -> Behavior {
        Behavior::Respond {
            status,
            content_type: "application/json",
            body: body.as_bytes().to_vec(),
        }
    }
}

pub struct FaultyServer {
    pub base: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FaultyServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FaultyServer {
    pub async fn start(behavior: Behavior) -> FaultyServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(serve(stream, behavior.clone()));
            }
        });
        FaultyServer { base, task }
    }
}

/// An address where nothing listens (bound, then released).
pub async fn refused_base() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

async fn read_request(stream: &mut TcpStream) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let head = String::from_utf8_lossy(&buf).to_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let header_end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let mut have = buf.len() - header_end;
    while have < length {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => have += n,
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

async fn serve(mut stream: TcpStream, behavior: Behavior) {
    read_request(&mut stream).await;
    match behavior {
        Behavior::Respond {
            status,
            content_type,
            body,
        } => {
            let head = format!(
                "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                reason(status),
                body.len()
            );
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.write_all(&body).await;
        }
        Behavior::NeverAnswer => tokio::time::sleep(Duration::from_secs(3600)).await,
        Behavior::Trickle { body, every } => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes()).await;
            for byte in body {
                if stream.write_all(&[byte]).await.is_err() {
                    return;
                }
                let _ = stream.flush().await;
                tokio::time::sleep(every).await;
            }
        }
        Behavior::HugeChunked { bytes } => {
            let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
            let _ = stream.write_all(head.as_bytes()).await;
            let chunk = vec![b' '; 16 * 1024];
            let mut sent = 0;
            while sent < bytes {
                let n = chunk.len().min(bytes - sent);
                let framed = [format!("{n:x}\r\n").as_bytes(), &chunk[..n], b"\r\n"].concat();
                if stream.write_all(&framed).await.is_err() {
                    return;
                }
                sent += n;
            }
            let _ = stream.write_all(b"0\r\n\r\n").await;
        }
    }
    let _ = stream.shutdown().await;
}
