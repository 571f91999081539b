//! Celery broker source (`celery:` signals): Superset's workers, Airflow's CeleryExecutor, any
//! Celery 5 app on Redis or RabbitMQ.
//!
//! Demand, in task slots = messages waiting in the pool's queues + tasks the workers hold
//! (`inspect active` + `inspect reserved`: running, and prefetched but not started). With no
//! worker online nobody answers the broadcast, so the waiting messages alone are the demand:
//! that is how a pool at zero leaves zero.
//!
//! - Waiting, Redis: kombu keeps a queue as lists, one per priority step: `queue`,
//!   `queue\x06\x163`, `queue\x06\x166`, `queue\x06\x169` (kombu `transport/redis.py`:
//!   `PRIORITY_STEPS = [0, 3, 6, 9]`, `sep = '\x06\x16'`, `_q_for_pri`, and `_size`, which sums
//!   the `LLEN`s of the four keys; a real worker's `BRPOP` on exactly these keys is in
//!   `tests/fixtures/celery/redis-monitor-celery-5.6.3.txt`).
//! - Waiting, RabbitMQ: the management API's `GET /api/queues/{vhost}/{name}` → `messages_ready`
//!   (that figure is refreshed every `collect_statistics_interval`, 5 s by default).
//! - Remote control (kombu `pidbox.py` `Mailbox._publish`/`_broadcast`, Celery
//!   `app/control.py`): a JSON message `{method, arguments, destination, pattern, matcher,
//!   ticket, reply_to: {exchange: "reply.celery.pidbox", routing_key: <oid>}}` published to the
//!   `celery.pidbox` fanout exchange with headers `{clock, expires}`; each worker answers
//!   `{<node name>: <result>}` with header `ticket` to the direct exchange
//!   `reply.celery.pidbox`, routing key `<oid>`, which the caller binds to its queue
//!   `<oid>.reply.celery.pidbox` (`Mailbox.get_reply_queue`).
//!   - On Redis (kombu `transport/redis.py`): a fanout publish is `PUBLISH /{db}.celery.pidbox`
//!     (`keyprefix_fanout = '/{db}.'`, `_get_publish_topic` with an empty routing key); the
//!     message is kombu's envelope with a base64 `body` (`body_encoding`); a direct exchange
//!     routes through the set `_kombu.binding.reply.celery.pidbox` whose members are
//!     `routing_key\x06\x16pattern\x06\x16queue` (`_queue_bind`), and the worker `LPUSH`es the
//!     reply to the bound queue's list (`_put`). Captured in the fixture above.
//!   - On RabbitMQ everything goes through the management API: publish with
//!     `POST /api/exchanges/{vhost}/celery.pidbox/publish`, the reply queue with
//!     `PUT /api/queues/…`, `POST /api/bindings/{vhost}/e/reply.celery.pidbox/q/…` and
//!     `POST /api/queues/{vhost}/{queue}/get`; no AMQP client.
//!
//! The pure parts (URLs, key names, envelopes, replies, bodies) are `pub fn`s tested here; the
//! I/O is in [`super::celery_broker`].

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Deserialize;
use serde_json::{Value, json};

use super::celery_broker::{Broker, build_broker};
use super::error::{ParseError, SourceError, parse_json, required};
use super::{MetricSource, Reading};
use crate::policy::CelerySignal;

/// kombu `transport/redis.py`: `sep = '\x06\x16'`.
pub const KOMBU_SEP: &str = "\x06\x16";
/// kombu `transport/redis.py`: `PRIORITY_STEPS = [0, 3, 6, 9]`.
pub const PRIORITY_STEPS: [u8; 4] = [0, 3, 6, 9];
/// Celery's control exchange (`celery.pidbox`) and reply exchange (`reply.celery.pidbox`).
pub const PIDBOX_EXCHANGE: &str = "celery.pidbox";
pub const REPLY_EXCHANGE: &str = "reply.celery.pidbox";

/// Which broker a `celery:` signal talks to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrokerUrl {
    Redis {
        host: String,
        port: u16,
        db: u32,
        username: Option<String>,
    },
    Amqp {
        host: String,
        vhost: String,
        username: String,
    },
}

/// Parses a Celery broker URL. Errors are written for `validate` (the field is named there).
pub fn parse_broker(url: &str) -> Result<BrokerUrl, String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("`{url}` is not a URL: {e}"))?;
    let host = match parsed.host_str() {
        Some(h) if !h.is_empty() => h.to_string(),
        _ => return Err(format!("`{url}` names no host")),
    };
    if parsed.password().is_some() {
        return Err("a password inside the broker URL is an inline secret; use `password: { env: VAR }` or `{ file: /path }`".into());
    }
    let user = (!parsed.username().is_empty()).then(|| parsed.username().to_string());
    match parsed.scheme() {
        "redis" => {
            let db = match parsed.path().trim_start_matches('/') {
                "" => 0,
                n => n.parse::<u32>().map_err(|_| {
                    format!("`{url}`: the Redis database must be a number, not `{n}`")
                })?,
            };
            Ok(BrokerUrl::Redis {
                host,
                port: parsed.port().unwrap_or(6379),
                db,
                username: user,
            })
        }
        "amqp" | "pyamqp" => {
            // kombu: `amqp://host//` is vhost `/`, `amqp://host/` and `amqp://host` too.
            let path = parsed.path();
            let vhost = match path.strip_prefix('/').unwrap_or(path) {
                "" => "/".to_string(),
                v => percent_decode(v),
            };
            Ok(BrokerUrl::Amqp {
                host,
                vhost,
                username: user.unwrap_or_else(|| "guest".to_string()),
            })
        }
        "rediss" | "amqps" => Err(format!(
            "`{url}`: TLS brokers are not supported yet (use redis:// or amqp:// with the management API over https)"
        )),
        other => Err(format!(
            "`{url}`: broker scheme `{other}` is not supported; use redis:// or amqp://"
        )),
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(hex) = std::str::from_utf8(&bytes[i + 1..i + 3])
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The Redis list keys of `queue`, one per kombu priority step (`_q_for_pri`).
pub fn redis_queue_keys(queue: &str) -> [String; 4] {
    PRIORITY_STEPS.map(|p| {
        if p == 0 {
            queue.to_string()
        } else {
            format!("{queue}{KOMBU_SEP}{p}")
        }
    })
}

/// The Redis channel a fanout publish to `exchange` goes to (`keyprefix_fanout`, no routing key).
pub fn redis_fanout_channel(db: u32, exchange: &str) -> String {
    format!("/{db}.{exchange}")
}

/// The reply queue of the caller `oid` (`Mailbox.get_reply_queue`).
pub fn reply_queue(oid: &str) -> String {
    format!("{oid}.{REPLY_EXCHANGE}")
}

/// The member of `_kombu.binding.reply.celery.pidbox` that routes `oid`'s replies to its queue.
pub fn redis_reply_binding(oid: &str) -> String {
    format!("{oid}{KOMBU_SEP}{KOMBU_SEP}{}", reply_queue(oid))
}

/// One remote-control command.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    /// `active`, `reserved`, `ping`, `cancel_consumer`, `add_consumer`.
    pub method: &'static str,
    pub arguments: Value,
    /// Node names (`celery@host`); `None` = every worker.
    pub destination: Option<Vec<String>>,
}

impl Command {
    pub fn new(method: &'static str) -> Command {
        Command {
            method,
            arguments: json!({}),
            destination: None,
        }
    }
}

/// The pidbox message body (kombu `Mailbox._publish`).
pub fn control_body(cmd: &Command, ticket: &str, oid: &str) -> Value {
    json!({
        "method": cmd.method,
        "arguments": cmd.arguments,
        "destination": cmd.destination,
        "pattern": null,
        "matcher": null,
        "ticket": ticket,
        "reply_to": {"exchange": REPLY_EXCHANGE, "routing_key": oid},
    })
}

/// The message headers: `expires` (unix seconds) makes a late worker drop the request
/// (kombu `Node.handle_message`).
pub fn control_headers(expires_unix: f64) -> Value {
    json!({"clock": 1, "expires": expires_unix})
}

/// kombu's Redis envelope of a pidbox request (`Channel.prepare_message` + `encode_body`).
pub fn redis_envelope(cmd: &Command, ticket: &str, oid: &str, tag: &str, expires: f64) -> String {
    let body = control_body(cmd, ticket, oid).to_string();
    json!({
        "body": B64.encode(body.as_bytes()),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": control_headers(expires),
        "properties": {
            "delivery_mode": 2,
            "delivery_info": {"exchange": PIDBOX_EXCHANGE, "routing_key": ""},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": tag,
        },
    })
    .to_string()
}

/// A worker's answer: its node name and result, for request `ticket`.
pub type Reply = (String, Value);

#[derive(Deserialize)]
struct RawEnvelope {
    body: String,
    #[serde(default)]
    headers: Option<Value>,
    #[serde(default)]
    properties: Option<Value>,
}

/// Decodes one reply from a Redis reply list: `Ok(None)` when it answers another request.
pub fn parse_redis_reply(raw: &[u8], ticket: &str) -> Result<Option<Vec<Reply>>, ParseError> {
    let env: RawEnvelope = parse_json(raw)?;
    let theirs = env.headers.as_ref().and_then(|h| h.get("ticket"));
    if theirs.and_then(Value::as_str) != Some(ticket) {
        return Ok(None);
    }
    let encoding = env
        .properties
        .as_ref()
        .and_then(|p| p.get("body_encoding"))
        .and_then(Value::as_str);
    let body = match encoding {
        Some("base64") => B64
            .decode(env.body.as_bytes())
            .map_err(|e| ParseError(format!("reply body is not base64: {e}")))?,
        _ => env.body.into_bytes(),
    };
    parse_reply_body(&body).map(Some)
}

/// A reply body: `{"celery@host": <result>}`.
pub fn parse_reply_body(body: &[u8]) -> Result<Vec<Reply>, ParseError> {
    let map: BTreeMap<String, Value> = parse_json(body)
        .map_err(|e| ParseError(format!("reply is not a JSON object of node names: {e}")))?;
    Ok(map.into_iter().collect())
}

/// The management API's publish request for a pidbox command.
pub fn rabbit_publish_body(cmd: &Command, ticket: &str, oid: &str, expires: f64) -> Value {
    json!({
        "properties": {
            "content_type": "application/json",
            "content_encoding": "utf-8",
            "delivery_mode": 1,
            "headers": control_headers(expires),
        },
        "routing_key": "",
        "payload": control_body(cmd, ticket, oid).to_string(),
        "payload_encoding": "string",
    })
}

#[derive(Deserialize)]
struct RawGot {
    payload: String,
    #[serde(default)]
    payload_encoding: Option<String>,
    #[serde(default)]
    properties: Option<Value>,
}

/// `POST /api/queues/{vhost}/{queue}/get`'s answer: the replies for `ticket` (others skipped).
pub fn parse_rabbit_get(body: &[u8], ticket: &str) -> Result<Vec<Reply>, ParseError> {
    let got: Vec<RawGot> = parse_json(body)?;
    let mut out = Vec::new();
    for m in got {
        let theirs = m
            .properties
            .as_ref()
            .and_then(|p| p.get("headers"))
            .and_then(|h| h.get("ticket"))
            .and_then(Value::as_str);
        if theirs != Some(ticket) {
            continue;
        }
        let bytes = match m.payload_encoding.as_deref() {
            Some("base64") => B64
                .decode(m.payload.as_bytes())
                .map_err(|e| ParseError(format!("reply payload is not base64: {e}")))?,
            _ => m.payload.into_bytes(),
        };
        out.extend(parse_reply_body(&bytes)?);
    }
    Ok(out)
}

#[derive(Deserialize)]
struct RawQueue {
    messages_ready: Option<f64>,
    messages_unacknowledged: Option<f64>,
}

/// `GET /api/queues/{vhost}/{name}`: (`messages_ready`, `messages_unacknowledged`). A queue
/// created a moment ago has no figures yet: that is 0, not an error.
pub fn parse_rabbit_queue(body: &[u8]) -> Result<(u64, u64), ParseError> {
    let raw: Value = parse_json(body)?;
    if !raw.is_object() {
        return Err(ParseError("queue answer is not a JSON object".into()));
    }
    let q: RawQueue = serde_json::from_value(raw).map_err(|e| ParseError(format!("{e}")))?;
    let ready = required("messages_ready", Some(q.messages_ready.unwrap_or(0.0)))?;
    let unacked = required(
        "messages_unacknowledged",
        Some(q.messages_unacknowledged.unwrap_or(0.0)),
    )?;
    Ok((ready as u64, unacked as u64))
}

/// Tasks per node from `inspect active` / `inspect reserved` replies (each result is a list of
/// task dicts). A reply that is not a list is malformed.
pub fn tasks_per_node(replies: &[Reply]) -> Result<BTreeMap<String, u64>, ParseError> {
    let mut out = BTreeMap::new();
    for (node, result) in replies {
        let n = result.as_array().map(Vec::len).ok_or_else(|| {
            ParseError(format!("`{node}` answered {result}, not a list of tasks"))
        })?;
        *out.entry(node.clone()).or_insert(0) += n as u64;
    }
    Ok(out)
}

/// The host part of a node name (`celery@worker-0` → `worker-0`; a bare name is its own host).
pub fn node_host(node: &str) -> &str {
    node.split_once('@').map_or(node, |(_, h)| h)
}

/// What one poll found.
#[derive(Debug, Clone, PartialEq)]
pub struct CeleryState {
    /// Waiting messages per queue, in the policy's order.
    pub waiting: Vec<(String, u64)>,
    /// Tasks running on each worker that answered.
    pub active: BTreeMap<String, u64>,
    /// Tasks prefetched (not yet started) on each worker that answered.
    pub reserved: BTreeMap<String, u64>,
}

impl CeleryState {
    pub fn waiting_total(&self) -> u64 {
        self.waiting.iter().map(|(_, n)| n).sum()
    }
    pub fn running(&self) -> u64 {
        self.active.values().sum()
    }
    pub fn reserved_total(&self) -> u64 {
        self.reserved.values().sum()
    }
    pub fn workers(&self) -> usize {
        self.active.len().max(self.reserved.len())
    }
    pub fn demand(&self) -> f64 {
        (self.waiting_total() + self.running() + self.reserved_total()) as f64
    }
}

/// `waiting:<queue>` as a `'static` metric-style name for [`Reading::raw`], interned so a
/// reload does not leak a copy per poll.
fn waiting_label(queue: &str) -> &'static str {
    static NAMES: OnceLock<Mutex<Vec<&'static str>>> = OnceLock::new();
    let name = format!("waiting:{queue}");
    let mut names = NAMES.get_or_init(Default::default).lock().unwrap();
    if let Some(found) = names.iter().find(|n| **n == name) {
        return found;
    }
    let leaked: &'static str = Box::leak(name.into_boxed_str());
    names.push(leaked);
    leaked
}

pub struct CelerySource {
    name: String,
    spec: CelerySignal,
    broker: Result<Arc<dyn Broker>, String>,
}

impl CelerySource {
    pub fn new(spec: &CelerySignal) -> CelerySource {
        CelerySource {
            name: format!("celery {} {:?}", redacted_broker(&spec.broker), spec.queues),
            spec: spec.clone(),
            broker: build_broker(spec),
        }
    }

    /// Waiting counts and the workers' tasks, bounded by the signal's timeout.
    pub async fn state(&self) -> Result<CeleryState, SourceError> {
        let broker = self.broker.as_ref().map_err(|e| SourceError::Unreachable {
            target: redacted_broker(&self.spec.broker),
            detail: e.clone(),
        })?;
        let work = async {
            let waiting = broker.waiting(&self.spec.queues).await?;
            let cmds = [Command::new("active"), Command::new("reserved")];
            let replies = broker.control(&cmds, self.spec.reply_window).await?;
            let target = broker.target();
            let active = tasks_per_node(&replies[0]).map_err(|e| e.at(target))?;
            let reserved = tasks_per_node(&replies[1]).map_err(|e| e.at(target))?;
            Ok(CeleryState {
                waiting: self.spec.queues.iter().cloned().zip(waiting).collect(),
                active,
                reserved,
            })
        };
        tokio::time::timeout(self.spec.timeout, work)
            .await
            .unwrap_or_else(|_| {
                Err(SourceError::Timeout {
                    target: broker.target().to_string(),
                    after: self.spec.timeout,
                })
            })
    }
}

/// The broker URL without userinfo.
pub fn redacted_broker(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => super::http::redact(&u),
        Err(_) => url.to_string(),
    }
}

#[async_trait]
impl MetricSource for CelerySource {
    async fn poll(&self) -> Result<Reading, SourceError> {
        let state = self.state().await?;
        let mut raw = vec![
            ("waiting", state.waiting_total() as f64),
            ("running", state.running() as f64),
            ("reserved", state.reserved_total() as f64),
            ("workers", state.workers() as f64),
        ];
        for (queue, n) in &state.waiting {
            raw.push((waiting_label(queue), *n as f64));
        }
        Ok(Reading {
            demand: state.demand(),
            raw,
            labels: Vec::new(),
        })
    }

    fn name(&self) -> &str {
        &self.name
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::fixture;

    #[test]
    fn broker_urls_parse_and_bad_ones_say_why() {
        assert_eq!(
            parse_broker("redis://127.0.0.1:6379/2").unwrap(),
            BrokerUrl::Redis {
                host: "127.0.0.1".into(),
                port: 6379,
                db: 2,
                username: None
            }
        );
        assert_eq!(
            parse_broker("redis://redis").unwrap(),
            BrokerUrl::Redis {
                host: "redis".into(),
                port: 6379,
                db: 0,
                username: None
            }
        );
        for (url, vhost) in [
            ("amqp://bob@rmq:5672//", "/"),
            ("amqp://bob@rmq:5672/", "/"),
            ("amqp://bob@rmq", "/"),
            ("amqp://bob@rmq/superset", "superset"),
            ("amqp://bob@rmq/%2Fsuperset", "/superset"),
        ] {
            match parse_broker(url).unwrap() {
                BrokerUrl::Amqp {
                    vhost: v, username, ..
                } => {
                    assert_eq!((v.as_str(), username.as_str()), (vhost, "bob"), "{url}")
                }
                other => panic!("{url}: {other:?}"),
            }
        }
        assert!(parse_broker("sqs://x").unwrap_err().contains("sqs"));
        assert!(parse_broker("redis:///0").unwrap_err().contains("host"));
        assert!(parse_broker("redis://h/x").unwrap_err().contains("number"));
        assert!(
            parse_broker("redis://:pw@h/0")
                .unwrap_err()
                .contains("inline")
        );
        assert!(parse_broker("rediss://h/0").unwrap_err().contains("TLS"));
        assert!(parse_broker("not a url").is_err());
    }

    #[test]
    fn redis_keys_follow_kombu_priority_steps() {
        // The worker's own BRPOP in the captured MONITOR output lists exactly these keys.
        let capture = String::from_utf8(fixture("celery/redis-monitor-celery-5.6.3.txt")).unwrap();
        let keys = redis_queue_keys("superset");
        assert_eq!(keys[0], "superset");
        assert_eq!(keys[3], "superset\x06\x169");
        let shown = keys
            .iter()
            .map(|k| {
                format!(
                    "\"{}\"",
                    k.replace('\x06', "\\x06").replace('\x16', "\\x16")
                )
            })
            .collect::<Vec<_>>()
            .join(" ");
        assert!(capture.contains(&format!("\"BRPOP\" {shown}")), "{shown}");
        assert_eq!(redis_fanout_channel(0, PIDBOX_EXCHANGE), "/0.celery.pidbox");
        assert!(capture.contains("\"PUBLISH\" \"/0.celery.pidbox\""));
        assert_eq!(
            redis_reply_binding("abc"),
            "abc\x06\x16\x06\x16abc.reply.celery.pidbox"
        );
    }

    /// The MONITOR line's quoted argument `n` (1-based after the command), unescaped.
    fn monitor_arg(line: &str, n: usize) -> String {
        let mut args = Vec::new();
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            if c != '"' {
                continue;
            }
            let mut s = String::new();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => match chars.next() {
                        Some('"') => s.push('"'),
                        Some('\\') => s.push('\\'),
                        Some('x') => {
                            let hex: String = chars.by_ref().take(2).collect();
                            s.push(u8::from_str_radix(&hex, 16).unwrap() as char);
                        }
                        Some(other) => s.push(other),
                        None => {}
                    },
                    '"' => break,
                    c => s.push(c),
                }
            }
            args.push(s);
        }
        args[n].clone()
    }

    #[test]
    fn our_request_matches_what_celery_sends_and_its_reply_parses() {
        let capture = String::from_utf8(fixture("celery/redis-monitor-celery-5.6.3.txt")).unwrap();
        let publish = capture
            .lines()
            .find(|l| l.contains("\"PUBLISH\"") && l.contains("eyJtZXRob2QiOiAiYWN0aXZl"))
            .unwrap();
        let theirs: Value = serde_json::from_str(&monitor_arg(publish, 2)).unwrap();
        let their_body: Value =
            serde_json::from_slice(&B64.decode(theirs["body"].as_str().unwrap()).unwrap()).unwrap();
        let oid = their_body["reply_to"]["routing_key"].as_str().unwrap();
        let ticket = their_body["ticket"].as_str().unwrap();
        let ours: Value = serde_json::from_str(&redis_envelope(
            &Command::new("active"),
            ticket,
            oid,
            "tag",
            1.0,
        ))
        .unwrap();
        let our_body: Value =
            serde_json::from_slice(&B64.decode(ours["body"].as_str().unwrap()).unwrap()).unwrap();
        assert_eq!(our_body, their_body);
        for key in ["content-type", "content-encoding"] {
            assert_eq!(ours[key], theirs[key]);
        }
        assert_eq!(
            ours["properties"]["delivery_info"],
            theirs["properties"]["delivery_info"]
        );
        // The worker's reply to that request: one running task on celery@w1.
        let lpush = capture
            .lines()
            .find(|l| l.contains("\"LPUSH\"") && l.contains(oid))
            .unwrap();
        let reply = monitor_arg(lpush, 2);
        let got = parse_redis_reply(reply.as_bytes(), ticket)
            .unwrap()
            .unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, "celery@w1");
        assert_eq!(tasks_per_node(&got).unwrap()["celery@w1"], 1);
        assert_eq!(parse_redis_reply(reply.as_bytes(), "other").unwrap(), None);
    }

    #[test]
    fn malformed_replies_and_wrong_types_are_errors() {
        assert!(parse_redis_reply(b"", "t").is_err());
        assert!(parse_redis_reply(b"[1]", "t").is_err());
        let bad = json!({"body": "!!", "headers": {"ticket": "t"}, "properties": {"body_encoding": "base64"}});
        assert!(parse_redis_reply(bad.to_string().as_bytes(), "t").is_err());
        let list = vec![("celery@a".to_string(), json!({"ok": 1}))];
        assert!(tasks_per_node(&list).is_err());
    }

    #[test]
    fn rabbit_queue_figures() {
        let body =
            br#"{"name":"superset","messages_ready":7,"messages_unacknowledged":2,"consumers":1}"#;
        assert_eq!(parse_rabbit_queue(body).unwrap(), (7, 2));
        // Just declared: no figures yet.
        assert_eq!(parse_rabbit_queue(br#"{"name":"q"}"#).unwrap(), (0, 0));
        assert!(parse_rabbit_queue(br#"{"messages_ready":"7"}"#).is_err());
        assert!(parse_rabbit_queue(br#"{"messages_ready":-1}"#).is_err());
        assert!(parse_rabbit_queue(br#"[]"#).is_err());
        assert!(parse_rabbit_queue(b"").is_err());
    }

    #[test]
    fn rabbit_get_keeps_our_ticket_only() {
        let body = json!([
            {"payload": "{\"celery@w1\": [{\"id\": \"x\"}]}", "payload_encoding": "string",
             "properties": {"headers": {"ticket": "mine", "clock": 3}}},
            {"payload": "{\"celery@w2\": []}", "payload_encoding": "string",
             "properties": {"headers": {"ticket": "other"}}},
            {"payload": B64.encode("{\"celery@w3\": []}"), "payload_encoding": "base64",
             "properties": {"headers": {"ticket": "mine"}}}
        ]);
        let got = parse_rabbit_get(body.to_string().as_bytes(), "mine").unwrap();
        let nodes: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(nodes, ["celery@w1", "celery@w3"]);
        let publish = rabbit_publish_body(&Command::new("active"), "t", "o", 2.0);
        let payload: Value = serde_json::from_str(publish["payload"].as_str().unwrap()).unwrap();
        assert_eq!(payload["reply_to"]["exchange"], "reply.celery.pidbox");
        assert_eq!(publish["properties"]["headers"]["expires"], 2.0);
    }

    #[test]
    fn demand_is_waiting_plus_held_tasks_and_zero_workers_is_waiting_only() {
        let state = CeleryState {
            waiting: vec![("superset".into(), 5), ("alerts".into(), 1)],
            active: [("celery@a".to_string(), 2), ("celery@b".to_string(), 0)].into(),
            reserved: [("celery@a".to_string(), 1)].into(),
        };
        assert_eq!(state.demand(), 9.0);
        assert_eq!(state.workers(), 2);
        let empty = CeleryState {
            waiting: vec![("superset".into(), 3)],
            active: BTreeMap::new(),
            reserved: BTreeMap::new(),
        };
        assert_eq!(empty.demand(), 3.0);
        assert_eq!(node_host("celery@worker-0"), "worker-0");
        assert_eq!(waiting_label("q"), waiting_label("q"));
    }
}
