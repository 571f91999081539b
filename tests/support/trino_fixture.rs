//! A Trino / PrestoDB coordinator fixture (axum) faithful to engine-apis.md §1.7, for the
//! tests: no Trino or Presto server is installable here.
//!
//! Serves, per dialect: `GET /v1/query[?state=]` (AUTHENTICATED_USER: 401 without the user
//! header; Trino refuses Basic with a password), Trino `GET /ui/api/stats` (401
//! `WWW-Authenticate: Trino-Form-Login` without the `Trino-UI-Token` cookie unless the UI uses a
//! fixed user) and `POST /ui/login`, Trino `GET /metrics`, Presto `GET /v1/cluster` (11 fields,
//! an "old Presto" mode without `runningTasks`/`adjustedQueueSize`, a 503 "no resource manager"
//! mode), `GET /v1/info` and `GET /v1/info/state`. Every body carries unknown fields.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Trino,
    Presto,
}

/// Switches for the failure modes; change them with [`TrinoFixture::configure`].
#[derive(Debug, Clone)]
pub struct FixtureConfig {
    /// `/ui/api/stats` needs the login cookie (Trino default over HTTP); `false` = fixed user.
    pub ui_needs_login: bool,
    /// Every authenticated endpoint answers 403 (access control denies the user).
    pub forbidden: bool,
    /// Presto `/v1/cluster` answers 503 (coordinator knows no resource manager).
    pub no_resource_manager: bool,
    /// Presto `/v1/cluster` without `runningTasks` and `adjustedQueueSize`.
    pub old_presto: bool,
    pub active_workers: u32,
}

#[derive(Debug, Clone)]
pub struct FixtureQuery {
    pub state: String,
    pub fully_blocked: bool,
}

struct Shared {
    dialect: Dialect,
    config: FixtureConfig,
    queries: Vec<FixtureQuery>,
    requests: Vec<String>,
}

pub struct TrinoFixture {
    pub base: String,
    shared: Arc<Mutex<Shared>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for TrinoFixture {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl TrinoFixture {
    pub async fn start(dialect: Dialect) -> TrinoFixture {
        let config = FixtureConfig {
            ui_needs_login: false,
            forbidden: false,
            no_resource_manager: false,
            old_presto: false,
            active_workers: 4,
        };
        let shared = Arc::new(Mutex::new(Shared {
            dialect,
            config,
            queries: Vec::new(),
            requests: Vec::new(),
        }));
        let app = Router::new()
            .route("/v1/query", get(query_list))
            .route("/ui/api/stats", get(ui_stats))
            .route("/ui/login", post(ui_login))
            .route("/v1/cluster", get(cluster))
            .route("/metrics", get(metrics))
            .route("/v1/info", get(info))
            .route("/v1/info/state", get(info_state))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        TrinoFixture {
            base,
            shared,
            server,
        }
    }

    /// Replaces the query list: `(state, fully_blocked)`.
    pub fn set_queries(&self, queries: &[(&str, bool)]) {
        self.shared.lock().unwrap().queries = queries
            .iter()
            .map(|(s, b)| FixtureQuery {
                state: s.to_string(),
                fully_blocked: *b,
            })
            .collect();
    }

    pub fn configure(&self, change: impl FnOnce(&mut FixtureConfig)) {
        change(&mut self.shared.lock().unwrap().config);
    }

    /// Paths requested so far.
    pub fn requests(&self) -> Vec<String> {
        self.shared.lock().unwrap().requests.clone()
    }
}

type Ctx = State<Arc<Mutex<Shared>>>;

fn user_header(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Trino => "x-trino-user",
        Dialect::Presto => "x-presto-user",
    }
}

/// Trino's InsecureAuthenticator (§1.6): the user header, or Basic with no password.
fn authenticate(shared: &Shared, headers: &HeaderMap) -> Result<String, Box<Response>> {
    let other = match shared.dialect {
        Dialect::Trino => "x-presto-user",
        Dialect::Presto => "x-trino-user",
    };
    if shared.dialect == Dialect::Trino
        && headers.contains_key(other)
        && headers.contains_key("x-trino-user")
    {
        let refused = (
            StatusCode::BAD_REQUEST,
            "Both Trino and Presto headers detected",
        );
        return Err(Box::new(refused.into_response()));
    }
    if let Some(user) = headers
        .get(user_header(shared.dialect))
        .and_then(|v| v.to_str().ok())
    {
        return Ok(user.to_string());
    }
    if let Some(basic) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
    {
        use base64::Engine as _;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(basic)
            .unwrap_or_default();
        let text = String::from_utf8_lossy(&decoded).to_string();
        let (user, password) = text.split_once(':').unwrap_or((&text, ""));
        if !password.is_empty() && shared.dialect == Dialect::Trino {
            let message = "Password not allowed for insecure authentication";
            return Err(Box::new(unauthorized(message, "Basic realm=\"Trino\"")));
        }
        return Ok(user.to_string());
    }
    let message = "Basic authentication or X-Trino-User must be sent";
    Err(Box::new(unauthorized(message, "Basic realm=\"Trino\"")))
}

fn unauthorized(message: &str, challenge: &str) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, challenge.to_string())],
        message.to_string(),
    )
        .into_response()
}

fn record(shared: &mut Shared, path: &str) {
    shared.requests.push(path.to_string());
}

const TRINO_STATES: &[&str] = &[
    "QUEUED",
    "WAITING_FOR_RESOURCES",
    "DISPATCHING",
    "PLANNING",
    "STARTING",
    "RUNNING",
    "FINISHING",
    "FINISHED",
    "FAILED",
];

async fn query_list(
    State(shared): Ctx,
    headers: HeaderMap,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    let mut s = shared.lock().unwrap();
    record(&mut s, "/v1/query");
    let user = match authenticate(&s, &headers) {
        Ok(user) => user,
        Err(r) => return *r,
    };
    if s.config.forbidden {
        return (StatusCode::FORBIDDEN, "Access Denied: Cannot view queries").into_response();
    }
    let filter = q
        .iter()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.to_uppercase());
    let known = |st: &str| {
        TRINO_STATES.contains(&st)
            || (s.dialect == Dialect::Presto && st == "WAITING_FOR_PREREQUISITES")
    };
    if let Some(f) = &filter
        && !known(f)
    {
        return (
            StatusCode::BAD_REQUEST,
            format!("No enum constant QueryState.{f}"),
        )
            .into_response();
    }
    let list: Vec<Value> = s
        .queries
        .iter()
        .enumerate()
        .filter(|(_, q)| filter.as_deref().is_none_or(|f| f == q.state))
        .map(|(i, q)| basic_query_info(s.dialect, i, q, &user))
        .collect();
    axum::Json(list).into_response()
}

fn basic_query_info(dialect: Dialect, i: usize, q: &FixtureQuery, user: &str) -> Value {
    let id = format!("20240101_120000_{i:05}_abcde");
    let mut v = json!({
        "queryId": id,
        "session": {"queryId": id, "user": user, "source": "trino-cli"},
        "resourceGroupId": ["global"],
        "state": q.state,
        "scheduled": q.state == "RUNNING",
        "self": format!("http://coordinator:8080/v1/query/{id}"),
        "query": "SELECT count(*) FROM t",
        "updateType": null, "preparedQuery": null,
        "queryStats": {
            "createTime": "2024-01-01T12:00:00.000Z", "endTime": null, "queuedTime": "1.23s",
            "elapsedTime": "1.30s", "executionTime": "0.00ms", "totalDrivers": 0, "queuedDrivers": 0,
            "runningDrivers": 0, "completedDrivers": 0, "rawInputDataSize": "0B", "rawInputPositions": 0,
            "physicalInputDataSize": "0B", "cumulativeUserMemory": 0.0, "cumulativeSystemMemory": 0.0,
            "userMemoryReservation": "0B", "totalMemoryReservation": "0B", "peakUserMemoryReservation": "0B",
            "peakTotalMemoryReservation": "0B", "totalCpuTime": "0.00ms", "totalScheduledTime": "0.00ms",
            "fullyBlocked": q.fully_blocked, "blockedReasons": [], "progressPercentage": null,
            "fieldAddedInAFutureRelease": 1
        },
        "errorType": null, "errorCode": null, "queryType": "SELECT",
        "unknownTopLevel": {"nested": [1, 2]}
    });
    if dialect == Dialect::Presto {
        let obj = v.as_object_mut().unwrap();
        obj.insert("memoryPool".into(), json!("general"));
        obj.insert("warnings".into(), json!([]));
        obj.insert("runningTasks".into(), json!(0));
    }
    v
}

struct Counters {
    queued: u32,
    running: u32,
    blocked: u32,
}

fn counters(queries: &[FixtureQuery]) -> Counters {
    let mut c = Counters {
        queued: 0,
        running: 0,
        blocked: 0,
    };
    for q in queries {
        match q.state.as_str() {
            "QUEUED" => c.queued += 1,
            "RUNNING" if q.fully_blocked => c.blocked += 1,
            "RUNNING" => c.running += 1,
            _ => {}
        }
    }
    c
}

async fn ui_stats(State(shared): Ctx, headers: HeaderMap) -> Response {
    let mut s = shared.lock().unwrap();
    record(&mut s, "/ui/api/stats");
    if s.dialect == Dialect::Presto {
        return StatusCode::NOT_FOUND.into_response();
    }
    let has_cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.split(';')
                .any(|c| c.trim().starts_with("Trino-UI-Token="))
        });
    if s.config.ui_needs_login && !has_cookie {
        return unauthorized("Unauthorized", "Trino-Form-Login");
    }
    let c = counters(&s.queries);
    axum::Json(json!({
        "runningQueries": c.running, "blockedQueries": c.blocked, "queuedQueries": c.queued,
        "activeCoordinators": 1, "activeWorkers": s.config.active_workers, "runningDrivers": 212,
        "totalAvailableProcessors": 64, "reservedMemory": 1.073741824E9, "totalInputRows": 123456789,
        "totalInputBytes": 987654321, "totalCpuTimeSecs": 4567
    }))
    .into_response()
}

async fn ui_login(State(shared): Ctx, body: String) -> Response {
    record(&mut shared.lock().unwrap(), "/ui/login");
    let has_user = body
        .split('&')
        .any(|kv| kv.starts_with("username=") && kv.len() > "username=".len());
    if !has_user {
        return (
            StatusCode::SEE_OTHER,
            [(header::LOCATION, "/ui/login.html")],
        )
            .into_response();
    }
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, "/ui/".to_string()),
            (
                header::SET_COOKIE,
                "Trino-UI-Token=fixture.jwt.token; Path=/ui; HttpOnly".to_string(),
            ),
        ],
    )
        .into_response()
}

async fn cluster(State(shared): Ctx, headers: HeaderMap) -> Response {
    let mut s = shared.lock().unwrap();
    record(&mut s, "/v1/cluster");
    if s.dialect == Dialect::Trino {
        return StatusCode::NOT_FOUND.into_response();
    }
    if let Err(r) = authenticate(&s, &headers) {
        return *r;
    }
    if s.config.forbidden {
        return StatusCode::FORBIDDEN.into_response();
    }
    if s.config.no_resource_manager {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "No resource manager available",
        )
            .into_response();
    }
    let c = counters(&s.queries);
    let mut body = json!({
        "runningQueries": c.running, "blockedQueries": c.blocked, "queuedQueries": c.queued,
        "activeWorkers": s.config.active_workers, "runningDrivers": 212, "runningTasks": 18,
        "reservedMemory": 1.073741824E9, "totalInputRows": 123456789, "totalInputBytes": 987654321,
        "totalCpuTimeSecs": 4567, "adjustedQueueSize": 0
    });
    if s.config.old_presto {
        let obj = body.as_object_mut().unwrap();
        obj.remove("runningTasks");
        obj.remove("adjustedQueueSize");
    }
    axum::Json(body).into_response()
}

async fn metrics(State(shared): Ctx, headers: HeaderMap) -> Response {
    let mut s = shared.lock().unwrap();
    record(&mut s, "/metrics");
    if s.dialect == Dialect::Presto {
        return StatusCode::NOT_FOUND.into_response();
    }
    if let Err(r) = authenticate(&s, &headers) {
        return *r;
    }
    let c = counters(&s.queries);
    let text = format!(
        "# TYPE trino_execution_name_QueryManager_QueuedQueries gauge\ntrino_execution_name_QueryManager_QueuedQueries {}.0\n\
         # TYPE trino_execution_name_QueryManager_RunningQueries gauge\ntrino_execution_name_QueryManager_RunningQueries {}.0\n\
         # TYPE trino_failuredetector_name_HeartbeatFailureDetector_ActiveCount gauge\n\
         trino_failuredetector_name_HeartbeatFailureDetector_ActiveCount {}.0\n# EOF\n",
        c.queued, c.running, s.config.active_workers
    );
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

async fn info(State(shared): Ctx) -> Response {
    let s = shared.lock().unwrap();
    axum::Json(json!({
        "nodeId": "coordinator", "state": "ACTIVE", "nodeVersion": {"version": "476"},
        "environment": "test", "coordinator": true, "coordinatorId": null, "starting": false,
        "uptime": "5.34m", "dialect": format!("{:?}", s.dialect)
    }))
    .into_response()
}

async fn info_state() -> Response {
    axum::Json(json!("ACTIVE")).into_response()
}
