//! A minimal Redis client (RESP2, one connection, one command at a time) for the Celery
//! broker: `AUTH`, `SELECT`, `LLEN`, `SADD`, `SREM`, `PUBLISH`, `RPOP`, `DEL`.
//!
//! Why not the `redis` crate: it pulls in `num-bigint`, which turns on `num-integer/i128` for
//! the whole dependency graph and so rebuilds the AWS SDK crates (feature unification) — a
//! 20-minute rebuild on CI's 2 cores for eight commands. The protocol subset here is small
//! and specified (<https://redis.io/docs/latest/develop/reference/protocol-spec/>: simple
//! strings `+`, errors `-`, integers `:`, bulk strings `$`, arrays `*`; commands are arrays of
//! bulk strings), and [`parse_reply`] is tested on its own.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// One RESP2 reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Simple(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Value>>),
}

/// Why a command failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RespError {
    #[error("{0}")]
    Io(String),
    /// Connect, or a command's write and read, took longer than the connection's timeout.
    #[error("{what}: no answer within {after:?}")]
    Timeout { what: String, after: Duration },
    /// The server's `-ERR …` line; the first word is its code (`WRONGTYPE`, `NOAUTH`, …).
    #[error("{0}")]
    Server(String),
    #[error("protocol error: {0}")]
    Protocol(String),
}

impl RespError {
    pub fn code(&self) -> Option<&str> {
        match self {
            RespError::Server(line) => line.split(' ').next(),
            _ => None,
        }
    }
}

/// Longest bulk string or array accepted (a reply list item is a few KiB).
const MAX_LEN: i64 = 16 << 20;
/// Most bytes one reply may take (all its items together); more is a protocol error, never a
/// buffer growing with what the peer sends.
const MAX_REPLY_BYTES: usize = 32 << 20;
/// Deepest array nesting accepted (the commands here answer flat arrays at most).
const MAX_DEPTH: usize = 2;

/// Encodes a command as a RESP array of bulk strings.
pub fn encode(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Parses one complete reply from the front of `buf`: `Ok(Some((value, used)))`, `Ok(None)`
/// when more bytes are needed, `Err` for a server error or a protocol violation.
pub fn parse_reply(buf: &[u8]) -> Result<Option<(Value, usize)>, RespError> {
    parse_nested(buf, 0)
}

fn parse_nested(buf: &[u8], depth: usize) -> Result<Option<(Value, usize)>, RespError> {
    let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else {
        return Ok(None);
    };
    if end == 0 {
        return Err(RespError::Protocol("empty reply line".into()));
    }
    let line = std::str::from_utf8(&buf[1..end])
        .map_err(|_| RespError::Protocol("non-UTF-8 header line".into()))?;
    let after = end + 2;
    let int = |s: &str| {
        s.parse::<i64>()
            .map_err(|_| RespError::Protocol(format!("bad integer `{s}`")))
    };
    match buf.first() {
        Some(b'+') => Ok(Some((Value::Simple(line.to_string()), after))),
        Some(b'-') => Err(RespError::Server(line.to_string())),
        Some(b':') => Ok(Some((Value::Int(int(line)?), after))),
        Some(b'$') => {
            let len = int(line)?;
            if len < 0 {
                return Ok(Some((Value::Bulk(None), after)));
            }
            if len > MAX_LEN {
                return Err(RespError::Protocol(format!("bulk string of {len} bytes")));
            }
            let len = len as usize;
            if buf.len() < after + len + 2 {
                return Ok(None);
            }
            Ok(Some((
                Value::Bulk(Some(buf[after..after + len].to_vec())),
                after + len + 2,
            )))
        }
        Some(b'*') => {
            let n = int(line)?;
            if n < 0 {
                return Ok(Some((Value::Array(None), after)));
            }
            if n > MAX_LEN {
                return Err(RespError::Protocol(format!("array of {n} items")));
            }
            if depth >= MAX_DEPTH {
                return Err(RespError::Protocol("arrays nested too deep".into()));
            }
            let mut items = Vec::with_capacity(n.min(1024) as usize);
            let mut used = after;
            for _ in 0..n {
                match parse_nested(&buf[used..], depth + 1)? {
                    None => return Ok(None),
                    Some((v, k)) => {
                        items.push(v);
                        used += k;
                    }
                }
            }
            Ok(Some((Value::Array(Some(items)), used)))
        }
        Some(other) => Err(RespError::Protocol(format!(
            "unexpected reply type byte 0x{other:02x}"
        ))),
        None => Ok(None),
    }
}

/// One connection.
pub struct Connection {
    stream: BufReader<TcpStream>,
    buf: Vec<u8>,
    /// Bounds the connect and each command's write and read.
    timeout: Duration,
}

/// `fut` within `limit`, else an I/O error naming what timed out.
async fn within<T>(
    limit: Duration,
    what: &str,
    fut: impl std::future::Future<Output = Result<T, RespError>>,
) -> Result<T, RespError> {
    tokio::time::timeout(limit, fut).await.unwrap_or_else(|_| {
        Err(RespError::Timeout {
            what: what.to_string(),
            after: limit,
        })
    })
}

impl Connection {
    /// Connects, then `AUTH` (when a password is given) and `SELECT db`.
    pub async fn open(
        host: &str,
        port: u16,
        db: u32,
        username: Option<&str>,
        password: Option<&str>,
        timeout: Duration,
    ) -> Result<Connection, RespError> {
        let stream = within(timeout, &format!("connect {host}:{port}"), async {
            TcpStream::connect((host, port))
                .await
                .map_err(|e| RespError::Io(format!("connect {host}:{port}: {e}")))
        })
        .await?;
        let mut con = Connection {
            stream: BufReader::new(stream),
            buf: Vec::new(),
            timeout,
        };
        if let Some(pw) = password {
            match username {
                Some(user) => {
                    con.query(&[b"AUTH", user.as_bytes(), pw.as_bytes()])
                        .await?
                }
                None => con.query(&[b"AUTH", pw.as_bytes()]).await?,
            };
        }
        if db != 0 {
            con.query(&[b"SELECT", db.to_string().as_bytes()]).await?;
        }
        Ok(con)
    }

    /// Sends one command and reads its reply (bounded in time and size).
    pub async fn query(&mut self, args: &[&[u8]]) -> Result<Value, RespError> {
        let limit = self.timeout;
        within(limit, "redis command", self.exchange(args)).await
    }

    async fn exchange(&mut self, args: &[&[u8]]) -> Result<Value, RespError> {
        let io = |e: std::io::Error| RespError::Io(e.to_string());
        self.stream
            .get_mut()
            .write_all(&encode(args))
            .await
            .map_err(io)?;
        loop {
            if let Some((value, used)) = parse_reply(&self.buf)? {
                self.buf.drain(..used);
                return Ok(value);
            }
            let mut chunk = [0u8; 16 * 1024];
            let n = self.stream.read(&mut chunk).await.map_err(io)?;
            if n == 0 {
                return Err(RespError::Io("connection closed by the server".into()));
            }
            if self.buf.len() + n > MAX_REPLY_BYTES {
                return Err(RespError::Protocol(format!(
                    "reply larger than {MAX_REPLY_BYTES} bytes"
                )));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// A command whose reply must be an integer (`LLEN`, `SADD`, `PUBLISH`, …).
    pub async fn int(&mut self, args: &[&[u8]]) -> Result<i64, RespError> {
        match self.query(args).await? {
            Value::Int(n) => Ok(n),
            other => Err(RespError::Protocol(format!(
                "expected an integer, got {other:?}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hostile replies are protocol errors, never a panic or a stack overflow.
    #[test]
    fn hostile_replies_are_errors() {
        assert!(matches!(parse_reply(b"\r\n"), Err(RespError::Protocol(_))));
        let deep = b"*1\r\n".repeat(100_000);
        assert!(matches!(parse_reply(&deep), Err(RespError::Protocol(_))));
        assert!(matches!(
            parse_reply(b"$99999999999\r\n"),
            Err(RespError::Protocol(_))
        ));
        // A flat array of bulk strings (RPOP's answer) still parses.
        assert_eq!(
            parse_reply(b"*1\r\n$1\r\na\r\n").unwrap(),
            Some((
                Value::Array(Some(vec![Value::Bulk(Some(b"a".to_vec()))])),
                11
            ))
        );
    }

    #[test]
    fn encodes_commands_as_bulk_arrays() {
        assert_eq!(
            encode(&[b"LLEN", b"q\x06\x169"]),
            b"*2\r\n$4\r\nLLEN\r\n$4\r\nq\x06\x169\r\n".to_vec()
        );
    }

    #[test]
    fn parses_each_reply_type_and_waits_for_more_bytes() {
        assert_eq!(parse_reply(b":42\r\n").unwrap(), Some((Value::Int(42), 5)));
        assert_eq!(
            parse_reply(b"+OK\r\n").unwrap(),
            Some((Value::Simple("OK".into()), 5))
        );
        assert_eq!(
            parse_reply(b"$3\r\nabc\r\n").unwrap(),
            Some((Value::Bulk(Some(b"abc".to_vec())), 9))
        );
        assert_eq!(
            parse_reply(b"$-1\r\n").unwrap(),
            Some((Value::Bulk(None), 5))
        );
        assert_eq!(
            parse_reply(b"*-1\r\n").unwrap(),
            Some((Value::Array(None), 5))
        );
        let arr = b"*2\r\n$1\r\na\r\n:1\r\n";
        assert_eq!(
            parse_reply(arr).unwrap(),
            Some((
                Value::Array(Some(vec![Value::Bulk(Some(b"a".to_vec())), Value::Int(1)])),
                arr.len()
            ))
        );
        assert_eq!(parse_reply(b"$3\r\nab").unwrap(), None);
        assert_eq!(parse_reply(b"*2\r\n:1\r\n").unwrap(), None);
        assert_eq!(parse_reply(b":4").unwrap(), None);
    }

    #[test]
    fn errors_carry_their_code() {
        let e =
            parse_reply(b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n")
                .unwrap_err();
        assert_eq!(e.code(), Some("WRONGTYPE"));
        assert!(matches!(
            parse_reply(b"?x\r\n"),
            Err(RespError::Protocol(_))
        ));
        assert!(matches!(
            parse_reply(b":x\r\n"),
            Err(RespError::Protocol(_))
        ));
        assert!(matches!(
            parse_reply(b"$99999999999\r\n"),
            Err(RespError::Protocol(_))
        ));
    }
}
