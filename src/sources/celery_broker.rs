//! The I/O half of the Celery source and drain: a [`Broker`] answers "how many messages wait
//! in these queues" and carries remote-control commands to the workers (see
//! [`super::celery`] for the wire formats and where they come from). Two implementations:
//! [`RedisBroker`] (the RESP2 client in [`super::resp`]) and [`RabbitBroker`] (the RabbitMQ management HTTP API
//! only: no AMQP client).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::Method;
use reqwest::Url;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use super::celery::{
    BrokerUrl, Command, PIDBOX_EXCHANGE, REPLY_EXCHANGE, Reply, parse_broker, parse_rabbit_get,
    parse_rabbit_queue, parse_redis_reply, rabbit_publish_body, redacted_broker, redis_envelope,
    redis_fanout_channel, redis_queue_keys, redis_reply_binding, reply_queue,
};
use super::error::SourceError;
use super::http::{Credentials, HttpClient, check_status, redact};
use super::resp::{Connection, RespError, Value as RespValue};
use super::secret;
use crate::policy::{CelerySignal, HttpAuth, HttpOptions};
use crate::time::Timestamp;

/// How often the reply queue is read while replies are awaited.
const REPLY_POLL: Duration = Duration::from_millis(20);
/// Most replies taken from the reply queue per read.
const REPLY_BATCH: usize = 100;

/// A Celery broker, narrowed to the calls the source and the drain make.
#[async_trait]
pub trait Broker: Send + Sync {
    /// Messages waiting in each queue, in order.
    async fn waiting(&self, queues: &[String]) -> Result<Vec<u64>, SourceError>;

    /// Sends each command (one broadcast each) and collects the replies per command until
    /// `window` passes or every worker that got a command has answered it.
    async fn control(
        &self,
        commands: &[Command],
        window: Duration,
    ) -> Result<Vec<Vec<Reply>>, SourceError>;

    /// Broker endpoint for messages (no credentials).
    fn target(&self) -> &str;
}

/// The broker a signal names; `Err` (reported by every poll) for a URL validation refuses.
pub fn build_broker(spec: &CelerySignal) -> Result<Arc<dyn Broker>, String> {
    match parse_broker(&spec.broker)? {
        BrokerUrl::Redis {
            host,
            port,
            db,
            username,
        } => Ok(Arc::new(RedisBroker {
            target: redacted_broker(&spec.broker),
            host,
            port,
            db,
            username,
            password: spec.password.clone(),
            timeout: spec.timeout,
        })),
        BrokerUrl::Amqp {
            vhost, username, ..
        } => {
            let management = spec
                .management
                .clone()
                .ok_or("an amqp:// broker needs `management` (the RabbitMQ management API URL)")?;
            let http = HttpClient::new(&HttpOptions {
                auth: spec.password.clone().map(|password| HttpAuth::Basic {
                    username: username.clone(),
                    password,
                }),
                ca_file: None,
                timeout: spec.timeout,
                max_body_bytes: spec.max_body_bytes,
            });
            Ok(Arc::new(RabbitBroker {
                target: management.trim_end_matches('/').to_string(),
                management: management.trim_end_matches('/').to_string(),
                vhost,
                http,
            }))
        }
    }
}

/// A fresh random id in UUID text form (oid, ticket, delivery tag). The generator is seeded
/// once from the clock and the process id: ids must differ between calls, replicas and
/// restarts, not be reproducible.
fn new_id() -> String {
    static RNG: std::sync::Mutex<Option<fastrand::Rng>> = std::sync::Mutex::new(None);
    let (a, b) = {
        let mut guard = RNG.lock().unwrap();
        let rng = guard.get_or_insert_with(|| {
            let seed = (Timestamp::now().0 as u64) ^ (u64::from(std::process::id()) << 40);
            fastrand::Rng::with_seed(seed)
        });
        (rng.u64(..), rng.u64(..))
    };
    let hex = format!("{a:016x}{b:016x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// `expires` for a request collected for `window`: a worker that sees it later drops it.
fn expires_after(window: Duration) -> f64 {
    Timestamp::now().as_secs_f64() + window.as_secs_f64() + 1.0
}

/// How many replies a command can get: every receiver, or only its destinations.
fn expected(cmd: &Command, receivers: usize) -> usize {
    match &cmd.destination {
        Some(nodes) => nodes.len().min(receivers),
        None => receivers,
    }
}

/// Every worker that got a command must answer it: a silent worker's tasks would otherwise
/// count as none (demand too low, a busy worker looking idle to the drain). Fewer answers than
/// receivers after the window is an error, so the source holds and the drain waits.
fn all_answered(
    target: &str,
    commands: &[Command],
    replies: &[Vec<Reply>],
    wanted: &[usize],
    window: Duration,
) -> Result<(), SourceError> {
    for ((cmd, got), want) in commands.iter().zip(replies).zip(wanted) {
        if got.len() < *want {
            return Err(SourceError::Unreachable {
                target: target.to_string(),
                detail: format!(
                    "{} of {want} workers answered `{}` within {window:?}; a worker that cannot \
                     answer remote control (e.g. a busy `--pool solo`) hides its tasks",
                    got.len(),
                    cmd.method
                ),
            });
        }
    }
    Ok(())
}

pub struct RedisBroker {
    target: String,
    host: String,
    port: u16,
    db: u32,
    username: Option<String>,
    password: Option<crate::policy::SecretRef>,
    /// Bounds the connect and every read and write: the drain calls the broker outside the
    /// source's own deadline.
    timeout: Duration,
}

impl RedisBroker {
    async fn connect(&self) -> Result<Connection, SourceError> {
        let password = match &self.password {
            Some(secret) => Some(secret::read(secret, &self.target)?),
            None => None,
        };
        Connection::open(
            &self.host,
            self.port,
            self.db,
            self.username.as_deref(),
            password.as_deref(),
            self.timeout,
        )
        .await
        .map_err(|e| self.error(e))
    }

    fn error(&self, e: RespError) -> SourceError {
        redis_error(&self.target, e)
    }
}

/// Redis errors as source errors: no connection → unreachable, refused AUTH (`WRONGPASS`,
/// `NOAUTH`, `NOPERM`) → auth, a key of another type (`WRONGTYPE`) and anything else →
/// malformed.
pub(crate) fn redis_error(target: &str, e: RespError) -> SourceError {
    match (&e, e.code()) {
        (RespError::Timeout { after, .. }, _) => SourceError::Timeout {
            target: target.to_string(),
            after: *after,
        },
        (RespError::Io(detail), _) => SourceError::Unreachable {
            target: target.to_string(),
            detail: detail.clone(),
        },
        (_, Some("NOAUTH" | "WRONGPASS" | "NOPERM")) => SourceError::Auth {
            target: target.to_string(),
            detail: e.to_string(),
        },
        (_, Some(c)) if c.starts_with("ERR") && e.to_string().contains("AUTH") => {
            SourceError::Auth {
                target: target.to_string(),
                detail: e.to_string(),
            }
        }
        _ => SourceError::malformed(target, e.to_string()),
    }
}

#[async_trait]
impl Broker for RedisBroker {
    async fn waiting(&self, queues: &[String]) -> Result<Vec<u64>, SourceError> {
        let mut con = self.connect().await?;
        let mut out = Vec::with_capacity(queues.len());
        for queue in queues {
            let mut total = 0u64;
            for key in redis_queue_keys(queue) {
                let n = con
                    .int(&[b"LLEN", key.as_bytes()])
                    .await
                    .map_err(|e| self.error(e))?;
                total += n.max(0) as u64;
            }
            out.push(total);
        }
        Ok(out)
    }

    async fn control(
        &self,
        commands: &[Command],
        window: Duration,
    ) -> Result<Vec<Vec<Reply>>, SourceError> {
        let mut con = self.connect().await?;
        let oid = new_id();
        let binding_set = format!("_kombu.binding.{REPLY_EXCHANGE}");
        let binding = redis_reply_binding(&oid);
        let queue = reply_queue(&oid);
        con.int(&[b"SADD", binding_set.as_bytes(), binding.as_bytes()])
            .await
            .map_err(|e| self.error(e))?;
        let result = async {
            let channel = redis_fanout_channel(self.db, PIDBOX_EXCHANGE);
            let expires = expires_after(window);
            let mut tickets = Vec::new();
            let mut wanted = Vec::new();
            for cmd in commands {
                let ticket = new_id();
                let envelope = redis_envelope(cmd, &ticket, &oid, &new_id(), expires);
                // PUBLISH answers how many subscribers (workers) received the request.
                let receivers = con
                    .int(&[b"PUBLISH", channel.as_bytes(), envelope.as_bytes()])
                    .await
                    .map_err(|e| self.error(e))?;
                wanted.push(expected(cmd, receivers.max(0) as usize));
                tickets.push(ticket);
            }
            let mut replies: Vec<Vec<Reply>> = vec![Vec::new(); commands.len()];
            let rounds = (window.as_millis() / REPLY_POLL.as_millis()).max(1);
            let batch = REPLY_BATCH.to_string();
            for round in 0..=rounds {
                if replies.iter().zip(&wanted).all(|(r, w)| r.len() >= *w) {
                    break;
                }
                if round > 0 {
                    tokio::time::sleep(REPLY_POLL).await;
                }
                let items = match con
                    .query(&[b"RPOP", queue.as_bytes(), batch.as_bytes()])
                    .await
                    .map_err(|e| self.error(e))?
                {
                    RespValue::Array(Some(items)) => items,
                    RespValue::Array(None) | RespValue::Bulk(None) => continue,
                    other => {
                        return Err(SourceError::malformed(
                            &self.target,
                            format!("RPOP answered {other:?}"),
                        ));
                    }
                };
                for item in items {
                    let RespValue::Bulk(Some(item)) = item else {
                        continue;
                    };
                    for (i, ticket) in tickets.iter().enumerate() {
                        if let Some(got) =
                            parse_redis_reply(&item, ticket).map_err(|e| e.at(&self.target))?
                        {
                            replies[i].extend(got);
                        }
                    }
                }
            }
            all_answered(&self.target, commands, &replies, &wanted, window)?;
            Ok(replies)
        }
        .await;
        // Unbind and drop the reply queue whatever happened (a late reply then goes nowhere).
        let _ = con
            .query(&[b"SREM", binding_set.as_bytes(), binding.as_bytes()])
            .await;
        for key in redis_queue_keys(&queue) {
            let _ = con.query(&[b"DEL", key.as_bytes()]).await;
        }
        result
    }

    fn target(&self) -> &str {
        &self.target
    }
}

pub struct RabbitBroker {
    target: String,
    management: String,
    vhost: String,
    http: HttpClient,
}

impl RabbitBroker {
    /// `<management>/api/<segments…>`, each segment percent-encoded (vhost `/` → `%2F`).
    fn url(&self, segments: &[&str]) -> Result<Url, SourceError> {
        let mut url = Url::parse(&format!("{}/api", self.management)).map_err(|e| {
            SourceError::Unreachable {
                target: self.target.clone(),
                detail: format!("invalid management URL: {e}"),
            }
        })?;
        url.path_segments_mut()
            .map_err(|_| SourceError::Unreachable {
                target: self.target.clone(),
                detail: "the management URL cannot take a path".into(),
            })?
            .extend(segments);
        Ok(url)
    }

    async fn call(
        &self,
        method: Method,
        segments: &[&str],
        body: Option<&Value>,
    ) -> Result<Option<Vec<u8>>, SourceError> {
        let url = self.url(segments)?;
        let answer = self
            .http
            .send(method, &url, HeaderMap::new(), Credentials::Options, body)
            .await?;
        if answer.status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        check_status(&url, answer).map(Some)
    }

    async fn collect(
        &self,
        commands: &[Command],
        window: Duration,
        oid: &str,
        queue: &str,
    ) -> Result<Vec<Vec<Reply>>, SourceError> {
        let vh = self.vhost.as_str();
        let mut replies: Vec<Vec<Reply>> = vec![Vec::new(); commands.len()];
        // Each online worker has its own pidbox queue bound to the fanout exchange.
        let receivers = match self
            .call(
                Method::GET,
                &["exchanges", vh, PIDBOX_EXCHANGE, "bindings", "source"],
                None,
            )
            .await?
        {
            None => return Ok(replies), // no worker ever declared it: nobody to ask
            Some(body) => serde_json::from_slice::<Vec<Value>>(&body)
                .map_err(|e| SourceError::malformed(&self.target, format!("bindings: {e}")))?
                .len(),
        };
        if receivers == 0 {
            return Ok(replies);
        }
        self.call(
            Method::PUT,
            &["exchanges", vh, REPLY_EXCHANGE],
            Some(&json!({"type": "direct", "durable": false, "auto_delete": false})),
        )
        .await?;
        self.call(
            Method::PUT,
            &["queues", vh, queue],
            Some(&json!({"durable": false, "auto_delete": false,
                         "arguments": {"x-expires": 60_000}})),
        )
        .await?;
        self.call(
            Method::POST,
            &["bindings", vh, "e", REPLY_EXCHANGE, "q", queue],
            Some(&json!({"routing_key": oid, "arguments": {}})),
        )
        .await?;
        let expires = expires_after(window);
        let mut tickets = Vec::new();
        let mut wanted = Vec::new();
        for cmd in commands {
            let ticket = new_id();
            let body = rabbit_publish_body(cmd, &ticket, oid, expires);
            let routed = self
                .call(
                    Method::POST,
                    &["exchanges", vh, PIDBOX_EXCHANGE, "publish"],
                    Some(&body),
                )
                .await?
                .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
                .and_then(|v| v["routed"].as_bool())
                .unwrap_or(false);
            wanted.push(if routed { expected(cmd, receivers) } else { 0 });
            tickets.push(ticket);
        }
        let poll = Duration::from_millis(50);
        let rounds = (window.as_millis() / poll.as_millis()).max(1);
        for round in 0..=rounds {
            if replies.iter().zip(&wanted).all(|(r, w)| r.len() >= *w) {
                break;
            }
            if round > 0 {
                tokio::time::sleep(poll).await;
            }
            let got = self
                .call(
                    Method::POST,
                    &["queues", vh, queue, "get"],
                    Some(
                        &json!({"count": REPLY_BATCH, "ackmode": "ack_requeue_false",
                                 "encoding": "auto"}),
                    ),
                )
                .await?
                .unwrap_or_default();
            if got.is_empty() {
                continue;
            }
            for (i, ticket) in tickets.iter().enumerate() {
                replies[i].extend(parse_rabbit_get(&got, ticket).map_err(|e| e.at(&self.target))?);
            }
        }
        all_answered(&self.target, commands, &replies, &wanted, window)?;
        Ok(replies)
    }
}

#[async_trait]
impl Broker for RabbitBroker {
    async fn waiting(&self, queues: &[String]) -> Result<Vec<u64>, SourceError> {
        let mut out = Vec::with_capacity(queues.len());
        for queue in queues {
            // A 404 here (no such queue or vhost, or not a management API at all) is an error,
            // not "nothing waiting": a wrong URL must never read as zero demand.
            let url = self.url(&["queues", &self.vhost, queue])?;
            let body = self
                .http
                .get_ok(&url, HeaderMap::new(), Credentials::Options)
                .await?;
            let ready = parse_rabbit_queue(&body)
                .map_err(|e| e.at(&redact(&url)))?
                .0;
            out.push(ready);
        }
        Ok(out)
    }

    async fn control(
        &self,
        commands: &[Command],
        window: Duration,
    ) -> Result<Vec<Vec<Reply>>, SourceError> {
        let oid = new_id();
        let queue = reply_queue(&oid);
        let result = self.collect(commands, window, &oid, &queue).await;
        let _ = self
            .call(Method::DELETE, &["queues", &self.vhost, &queue], None)
            .await;
        result
    }

    fn target(&self) -> &str {
        &self.target
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_look_like_uuids_and_differ() {
        let (a, b) = (new_id(), new_id());
        assert_eq!(a.len(), 36);
        assert_ne!(a, b);
    }

    /// A worker that got `active` and did not answer makes the whole answer an error: its
    /// tasks would otherwise count as none (a busy worker looking idle).
    #[test]
    fn a_silent_worker_is_an_error_not_an_idle_one() {
        let cmds = [Command::new("active")];
        let one = vec![vec![("celery@a".to_string(), serde_json::json!([]))]];
        let window = Duration::from_secs(1);
        assert!(all_answered("t", &cmds, &one, &[1], window).is_ok());
        let err = all_answered("t", &cmds, &one, &[2], window).unwrap_err();
        assert_eq!(err.fault(), crate::engine::SignalFault::Unreachable);
        assert!(
            err.to_string().contains("1 of 2 workers answered `active`"),
            "{err}"
        );
    }

    #[test]
    fn replies_expected_from_destinations_or_everyone() {
        let mut cmd = Command::new("active");
        assert_eq!(expected(&cmd, 3), 3);
        cmd.destination = Some(vec!["celery@a".into()]);
        assert_eq!(expected(&cmd, 3), 1);
        assert_eq!(expected(&cmd, 0), 0);
    }

    #[test]
    fn amqp_without_management_is_refused() {
        let spec: CelerySignal =
            serde_json::from_value(json!({"broker": "amqp://u@h//", "queues": ["q"]})).unwrap();
        assert!(build_broker(&spec).err().unwrap().contains("management"));
    }

    #[test]
    fn redis_errors_map_to_faults() {
        use crate::engine::SignalFault;
        let wrong = RespError::Server(
            "WRONGTYPE Operation against a key holding the wrong kind of value".into(),
        );
        assert_eq!(redis_error("r", wrong).fault(), SignalFault::Malformed);
        let auth = RespError::Server("WRONGPASS invalid username-password pair".into());
        assert_eq!(redis_error("r", auth).fault(), SignalFault::Auth);
        let noauth = RespError::Server("NOAUTH Authentication required.".into());
        assert_eq!(redis_error("r", noauth).fault(), SignalFault::Auth);
        let io = RespError::Io("connect 127.0.0.1:1: refused".into());
        assert_eq!(redis_error("r", io).fault(), SignalFault::Unreachable);
    }
}
