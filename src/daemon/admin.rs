//! The admin endpoint behind `poolpilot pause` / `poolpilot resume`, on the daemon's one HTTP
//! listener: `POST /admin/pools/{pool}/pause` (JSON body [`PauseRequest`]) and
//! `POST /admin/pools/{pool}/resume`.
//!
//! Accepted from a loopback peer, or from anywhere with `Authorization: Bearer <token>` when
//! the settings name the token's environment variable (`admin_token_env`). With leader election
//! on, refused (409): a pause kept in one replica's state file would not follow a failover, so
//! the annotation or ASG tag (which every replica reads) is the way to pause there.
//!
//! A pause set here lives in [`AdminPauses`], which the controller reads each tick, persists
//! in the state file (it survives a restart) and puts in the pool's observation.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::http::HttpState;
use super::status::PauseView;
use crate::engine::{Pause, PauseKind, PauseSource};

/// The longest `--for` accepted (a pause meant for longer has no expiry).
pub const MAX_PAUSE_FOR: Duration = Duration::from_secs(366 * 24 * 3600);

/// Shared between the HTTP handlers and the controller.
#[derive(Clone, Default)]
pub struct AdminPauses {
    inner: Arc<Mutex<Inner>>,
    /// Woken on every change, so the loop persists it at once.
    pub changed: Arc<tokio::sync::Notify>,
}

#[derive(Default)]
struct Inner {
    pauses: BTreeMap<String, Pause>,
    /// Configured pools and their bounds (for 404s and the out-of-bounds note).
    pools: BTreeMap<String, (u32, u32)>,
    leader_election: bool,
}

impl AdminPauses {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The pause set here for `pool`, if any (expired ones included; the engine ignores them).
    pub fn get(&self, pool: &str) -> Option<Pause> {
        self.lock().pauses.get(pool).copied()
    }

    pub fn snapshot(&self) -> BTreeMap<String, Pause> {
        self.lock().pauses.clone()
    }

    /// Takes over `other`'s pauses and pools (see `Controller::share_admin_pauses`).
    pub fn adopt(&self, other: &AdminPauses) {
        let (pauses, pools, leader_election) = {
            let o = other.lock();
            (o.pauses.clone(), o.pools.clone(), o.leader_election)
        };
        let mut inner = self.lock();
        inner.pauses = pauses;
        inner.pools = pools;
        inner.leader_election = leader_election;
    }

    /// At start: what the state file held.
    pub fn restore(&self, pauses: BTreeMap<String, Pause>) {
        self.lock().pauses = pauses;
    }

    /// On every policy set: the pools that exist (a removed pool's pause is dropped).
    pub fn set_pools(&self, pools: BTreeMap<String, (u32, u32)>, leader_election: bool) {
        let mut inner = self.lock();
        inner.pauses.retain(|name, _| pools.contains_key(name));
        inner.pools = pools;
        inner.leader_election = leader_election;
    }

    /// Drops pauses whose expiry has passed; true when one was dropped.
    pub fn prune(&self, now: crate::time::Timestamp) -> bool {
        let mut inner = self.lock();
        let before = inner.pauses.len();
        inner.pauses.retain(|_, p| p.is_active(now));
        inner.pauses.len() != before
    }
}

/// Body of `POST /admin/pools/{pool}/pause`. Empty: hold the current size until resumed.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PauseRequest {
    /// Pin to this many workers (KEDA `paused-replicas`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u32>,
    /// Lapse after this long (humantime: `90m`, `2h`).
    #[serde(default, rename = "for", skip_serializing_if = "Option::is_none")]
    pub for_: Option<String>,
    /// `in` (no scale-down) or `out` (no scale-up) instead of both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<String>,
}

impl PauseRequest {
    /// The pause this asks for at `now`, or what is wrong with it.
    pub fn pause(&self, now: crate::time::Timestamp) -> Result<Pause, String> {
        let kind = match (self.replicas, self.direction.as_deref()) {
            (Some(_), Some(_)) => {
                return Err(
                    "--replicas pins both directions; --direction pauses one: give one of them"
                        .into(),
                );
            }
            (Some(replicas), None) => PauseKind::Pin { replicas },
            (None, None) => PauseKind::Hold,
            (None, Some("in")) => PauseKind::ScaleIn,
            (None, Some("out")) => PauseKind::ScaleOut,
            (None, Some(other)) => {
                return Err(format!(
                    "direction {other:?}: expected `in` (no scale-down) or `out` (no scale-up)"
                ));
            }
        };
        let until = match &self.for_ {
            None => None,
            Some(text) => {
                let d = humantime::parse_duration(text)
                    .map_err(|e| format!("for {text:?}: {e} (examples: 30m, 2h, 1d)"))?;
                if d.is_zero() || d > MAX_PAUSE_FOR {
                    return Err(format!(
                        "for {text:?}: must be more than 0 and at most 366 days (leave it out for a pause until resumed)"
                    ));
                }
                Some(now + d)
            }
        };
        Ok(Pause {
            kind,
            until,
            source: PauseSource::Admin,
        })
    }
}

fn error(status: StatusCode, message: String) -> Response {
    Refusal { status, message }.into_response()
}

fn refusal(status: StatusCode, message: String) -> Refusal {
    Refusal { status, message }
}

/// Why a request is refused: the status and a message that says what to do.
#[derive(Debug)]
struct Refusal {
    status: StatusCode,
    message: String,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (self.status, axum::Json(json!({ "error": self.message }))).into_response()
    }
}

/// Loopback, or the configured bearer token; else 403 saying how to get access.
fn authorize(s: &HttpState, req: &Request) -> Result<(), Refusal> {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    if peer.is_some_and(|ip| ip.is_loopback()) {
        return Ok(());
    }
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match (&s.admin_token, given) {
        (Some(token), Some(given)) if constant_time_eq(token.as_bytes(), given.as_bytes()) => Ok(()),
        (Some(_), _) => Err(refusal(
            StatusCode::FORBIDDEN,
            "the admin endpoint needs `Authorization: Bearer <token>` from a non-loopback peer; \
             the token is the value of the variable `admin_token_env` names in the daemon's settings \
             (poolpilot pause/resume send it from POOLPILOT_ADMIN_TOKEN)"
                .into(),
        )),
        (None, _) => Err(refusal(
            StatusCode::FORBIDDEN,
            "the admin endpoint answers only loopback peers: run poolpilot pause on the daemon's host \
             (or kubectl port-forward), or set `admin_token_env: VAR` in the daemon's settings with \
             VAR holding a token and send it as POOLPILOT_ADMIN_TOKEN"
                .into(),
        )),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The pool's bounds, or the 404/409 the request gets.
fn pool_bounds(admin: &AdminPauses, pool: &str) -> Result<(u32, u32), Refusal> {
    let inner = admin.lock();
    if inner.leader_election {
        return Err(refusal(
            StatusCode::CONFLICT,
            "leader election is on: a pause set here would live in one replica's state only; \
             pause through the platform, which every replica reads: \
             `kubectl annotate deployment/<name> poolpilot.io/paused=true` or the ASG tag \
             poolpilot.io/paused=true (see README, \"Pausing a pool\")"
                .into(),
        ));
    }
    inner.pools.get(pool).copied().ok_or_else(|| {
        let known: Vec<&str> = inner.pools.keys().map(String::as_str).collect();
        refusal(
            StatusCode::NOT_FOUND,
            format!("no pool named {pool:?}; known pools: {}", known.join(", ")),
        )
    })
}

pub async fn pause(State(s): State<HttpState>, Path(pool): Path<String>, req: Request) -> Response {
    if let Err(r) = authorize(&s, &req) {
        return r.into_response();
    }
    let bytes = match axum::body::to_bytes(req.into_body(), 64 * 1024).await {
        Ok(b) => b,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("reading the body: {e}")),
    };
    let body: PauseRequest = if bytes.iter().all(u8::is_ascii_whitespace) {
        PauseRequest::default()
    } else {
        match serde_json::from_slice(&bytes) {
            Ok(b) => b,
            Err(e) => return error(StatusCode::BAD_REQUEST, format!("body: {e}")),
        }
    };
    let (min, max) = match pool_bounds(&s.admin, &pool) {
        Ok(b) => b,
        Err(r) => return r.into_response(),
    };
    let now = s.clock.now();
    let pause = match body.pause(now) {
        Ok(p) => p,
        Err(why) => return error(StatusCode::BAD_REQUEST, why),
    };
    // KEDA pins to paused-replicas whatever min/max say; so do we, and say so.
    let note = match pause.kind {
        PauseKind::Pin { replicas } if replicas < min || replicas > max => Some(format!(
            "{replicas} is outside the policy's bounds [{min}, {max}]: pinned anyway (a pin is exact, as KEDA's paused-replicas is)"
        )),
        _ => None,
    };
    s.admin.lock().pauses.insert(pool.clone(), pause);
    s.admin.changed.notify_one();
    tracing::warn!(%pool, kind = pause.kind.label(), until = ?pause.until.map(|t| t.to_string()), "pool paused through the admin endpoint");
    let view = PauseView::of(&pause);
    (
        StatusCode::OK,
        axum::Json(json!({ "pool": pool, "paused": view, "note": note })),
    )
        .into_response()
}

pub async fn resume(
    State(s): State<HttpState>,
    Path(pool): Path<String>,
    req: Request,
) -> Response {
    if let Err(r) = authorize(&s, &req) {
        return r.into_response();
    }
    if let Err(r) = pool_bounds(&s.admin, &pool) {
        return r.into_response();
    }
    let removed = s.admin.lock().pauses.remove(&pool);
    s.admin.changed.notify_one();
    if removed.is_some() {
        tracing::warn!(%pool, "pool resumed through the admin endpoint");
    }
    let platform: Vec<PauseView> = s
        .board
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .pools
        .iter()
        .filter(|p| p.pool == pool)
        .flat_map(|p| p.pauses.iter().filter(|v| v.source != "admin").cloned())
        .collect();
    let note = (!platform.is_empty()).then(|| {
        "still paused by the platform (annotation or ASG tag): remove it there to resume fully"
            .to_string()
    });
    (
        StatusCode::OK,
        axum::Json(json!({
            "pool": pool,
            "resumed": removed.is_some(),
            "still_paused_by": platform,
            "note": note,
        })),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Timestamp;

    fn req(replicas: Option<u32>, for_: Option<&str>, direction: Option<&str>) -> PauseRequest {
        PauseRequest {
            replicas,
            for_: for_.map(str::to_owned),
            direction: direction.map(str::to_owned),
        }
    }

    #[test]
    fn requests_become_pauses_or_say_what_is_wrong() {
        let now = Timestamp::from_secs(1000);
        let p = req(Some(3), Some("1h"), None).pause(now).unwrap();
        assert_eq!(p.kind, PauseKind::Pin { replicas: 3 });
        assert_eq!(p.until, Some(Timestamp::from_secs(4600)));
        assert_eq!(
            req(None, None, None).pause(now).unwrap().kind,
            PauseKind::Hold
        );
        assert_eq!(
            req(None, None, Some("in")).pause(now).unwrap().kind,
            PauseKind::ScaleIn
        );
        assert_eq!(
            req(None, None, Some("out")).pause(now).unwrap().kind,
            PauseKind::ScaleOut
        );
        for (bad, says) in [
            (req(None, Some("soon"), None), "examples"),
            (req(None, Some("0s"), None), "more than 0"),
            (req(None, None, Some("up")), "expected `in`"),
            (req(Some(1), None, Some("in")), "give one of them"),
        ] {
            let e = bad.pause(now).unwrap_err();
            assert!(e.contains(says), "{e}");
        }
    }

    fn state(token: Option<&str>) -> HttpState {
        HttpState {
            board: Default::default(),
            clock: Arc::new(super::super::controller::WallClock),
            prometheus: None,
            admin: AdminPauses::default(),
            admin_token: token.map(str::to_owned),
        }
    }

    fn from(peer: [u8; 4], bearer: Option<&str>) -> Request {
        let mut r =
            axum::http::Request::builder().extension(ConnectInfo(SocketAddr::from((peer, 40000))));
        if let Some(b) = bearer {
            r = r.header(header::AUTHORIZATION, format!("Bearer {b}"));
        }
        r.body(axum::body::Body::empty()).unwrap()
    }

    #[test]
    fn loopback_or_the_token_else_403_saying_how() {
        assert!(authorize(&state(None), &from([127, 0, 0, 1], None)).is_ok());
        let refused = authorize(&state(None), &from([10, 0, 0, 7], Some("x"))).unwrap_err();
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
        let with = state(Some("s3cret"));
        assert!(authorize(&with, &from([10, 0, 0, 7], Some("s3cret"))).is_ok());
        let wrong = authorize(&with, &from([10, 0, 0, 7], Some("guess"))).unwrap_err();
        assert_eq!(wrong.status, StatusCode::FORBIDDEN);
        // No peer address known (not served with connect info): not loopback.
        let bare = axum::http::Request::new(axum::body::Body::empty());
        assert!(authorize(&state(None), &bare).is_err());
    }

    #[test]
    fn unknown_pools_are_404_naming_the_known_ones_and_leader_election_409() {
        let admin = AdminPauses::default();
        admin.set_pools(
            [("etl".to_string(), (1, 9)), ("spark".to_string(), (0, 4))].into(),
            false,
        );
        assert_eq!(pool_bounds(&admin, "etl").unwrap(), (1, 9));
        let r = pool_bounds(&admin, "nope").unwrap_err();
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        admin.set_pools([("etl".to_string(), (1, 9))].into(), true);
        assert_eq!(
            pool_bounds(&admin, "etl").unwrap_err().status,
            StatusCode::CONFLICT
        );
    }

    #[test]
    fn only_the_exact_token_matches() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
