//! Airflow auth paths a real server will not produce on demand: a token revoked mid-life (401
//! → one refresh → success), tokens that expire (refreshed before use), refused credentials,
//! and Airflow 2 Basic auth with its problem+json 401. An axum fake per engine-apis.md §2.1.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use poolpilot::engine::SignalFault;
use poolpilot::policy::{AirflowApiVersion, AirflowSignal, HttpAuth, HttpOptions, SecretRef};
use poolpilot::sources::MetricSource;
use poolpilot::sources::airflow::AirflowSource;
use poolpilot::time::Timestamp;
use serde_json::{Value, json};

const PASSWORD_VAR: &str = "POOLPILOT_AIRFLOW_AUTH_TEST_PW";
const POOL: &str = r#"{"name":"p","slots":4,"description":null,"include_deferred":false,"occupied_slots":3,"running_slots":1,"queued_slots":2,"scheduled_slots":5,"open_slots":1,"deferred_slots":0,"team_name":null}"#;

#[derive(Default)]
struct Fake {
    tokens_issued: AtomicU32,
    /// Seconds from now the next token's `exp` lies (negative = already expired).
    lifetime_secs: Mutex<i64>,
    valid: Mutex<Vec<String>>,
    /// Every bearer is refused (tokens are still issued).
    reject_all: AtomicBool,
}

fn jwt(exp: i64, n: u32) -> String {
    let enc = |s: String| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    format!(
        "{}.{}.sig",
        enc(r#"{"alg":"HS512","typ":"JWT"}"#.into()),
        enc(format!(r#"{{"sub":"admin","exp":{exp},"n":{n}}}"#))
    )
}

async fn issue(State(fake): State<Arc<Fake>>, body: axum::body::Bytes) -> Response {
    let creds: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if creds["username"] != "admin" || creds["password"] != "right-pw" {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"detail": "Invalid credentials"})),
        )
            .into_response();
    }
    let n = fake.tokens_issued.fetch_add(1, Ordering::SeqCst) + 1;
    let exp = Timestamp::now().0 / 1000 + *fake.lifetime_secs.lock().unwrap();
    let token = jwt(exp, n);
    fake.valid.lock().unwrap().push(token.clone());
    (
        StatusCode::CREATED,
        axum::Json(json!({"access_token": token})),
    )
        .into_response()
}

async fn pool_v2(State(fake): State<Arc<Fake>>, headers: HeaderMap) -> Response {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match bearer {
        Some(t)
            if !fake.reject_all.load(Ordering::SeqCst)
                && fake.valid.lock().unwrap().iter().any(|v| v == t) =>
        {
            ([(header::CONTENT_TYPE, "application/json")], POOL).into_response()
        }
        _ => (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"detail": "Not authenticated"})),
        )
            .into_response(),
    }
}

async fn pool_v1(headers: HeaderMap) -> Response {
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("admin:right-pw")
    );
    if headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        == Some(expected.as_str())
    {
        return ([(header::CONTENT_TYPE, "application/json")], POOL).into_response();
    }
    let problem = json!({"detail": null, "status": 401, "title": "Unauthorized", "type": "https://airflow.apache.org/docs/apache-airflow/2.10.5/stable-rest-api-ref.html#section/Errors/Unauthenticated"});
    (
        StatusCode::UNAUTHORIZED,
        [(header::CONTENT_TYPE, "application/problem+json")],
        problem.to_string(),
    )
        .into_response()
}

async fn start(lifetime_secs: i64) -> (String, Arc<Fake>) {
    let fake = Arc::new(Fake {
        lifetime_secs: Mutex::new(lifetime_secs),
        ..Fake::default()
    });
    let app = Router::new()
        .route("/auth/token", post(issue))
        .route("/api/v2/pools/p", get(pool_v2))
        .route("/api/v1/pools/p", get(pool_v1))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, fake)
}

fn source(api: &str, version: AirflowApiVersion) -> AirflowSource {
    source_with_password_in(api, version, PASSWORD_VAR)
}

/// A pool-`p` source logging in as `admin` with the password in env var `password_var`.
fn source_with_password_in(
    api: &str,
    version: AirflowApiVersion,
    password_var: &str,
) -> AirflowSource {
    AirflowSource::new(&AirflowSignal {
        api: api.into(),
        version,
        pool: Some("p".into()),
        queues: vec![],
        include_scheduled: false,
        http: HttpOptions {
            auth: Some(HttpAuth::Basic {
                username: "admin".into(),
                password: SecretRef::Env(password_var.into()),
            }),
            ..HttpOptions::default()
        },
    })
}

fn set_password(value: &str) {
    // SAFETY: the tests in this binary that read it all set the same value first.
    unsafe { std::env::set_var(PASSWORD_VAR, value) };
}

#[tokio::test]
async fn token_is_cached_then_refreshed_once_after_a_401() {
    set_password("right-pw");
    let (base, fake) = start(3600).await;
    let src = source(&base, AirflowApiVersion::V3);
    assert_eq!(src.poll().await.unwrap().demand, 3.0);
    assert_eq!(src.poll().await.unwrap().demand, 3.0);
    assert_eq!(
        fake.tokens_issued.load(Ordering::SeqCst),
        1,
        "a live token is reused"
    );
    fake.valid.lock().unwrap().clear(); // the server forgets every token (restart, key rotation)
    assert_eq!(src.poll().await.unwrap().demand, 3.0);
    assert_eq!(
        fake.tokens_issued.load(Ordering::SeqCst),
        2,
        "one refresh after the 401"
    );
}

#[tokio::test]
async fn an_expired_token_is_replaced_before_use() {
    set_password("right-pw");
    let (base, fake) = start(-10).await;
    let src = source(&base, AirflowApiVersion::V3);
    src.poll().await.unwrap();
    src.poll().await.unwrap();
    assert_eq!(
        fake.tokens_issued.load(Ordering::SeqCst),
        2,
        "an expired token is never sent"
    );
}

#[tokio::test]
async fn a_token_that_stays_refused_is_an_auth_fault_after_exactly_one_refresh() {
    set_password("right-pw");
    let (base, fake) = start(3600).await;
    let src = source(&base, AirflowApiVersion::V3);
    src.poll().await.unwrap();
    fake.reject_all.store(true, Ordering::SeqCst);
    let err = src.poll().await.unwrap_err();
    assert_eq!(err.fault(), SignalFault::Auth, "{err}");
    assert_eq!(
        fake.tokens_issued.load(Ordering::SeqCst),
        2,
        "one refresh per poll, no loop"
    );
}

#[tokio::test]
async fn wrong_password_is_an_auth_fault_without_the_password() {
    let (base, fake) = start(3600).await;
    let wrong_var = "POOLPILOT_AIRFLOW_AUTH_TEST_WRONG_PW";
    // SAFETY: only this test uses this variable.
    unsafe { std::env::set_var(wrong_var, "wrong-pw-value") };
    let src = source_with_password_in(&base, AirflowApiVersion::V3, wrong_var);
    let err = src.poll().await.unwrap_err();
    assert_eq!(err.fault(), SignalFault::Auth);
    assert!(!err.to_string().contains("wrong-pw-value"), "{err}");
    assert_eq!(fake.tokens_issued.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn airflow_2_uses_basic_auth_and_maps_problem_json_401() {
    set_password("right-pw");
    let (base, fake) = start(3600).await;
    let reading = source(&base, AirflowApiVersion::V2).poll().await.unwrap();
    assert_eq!(
        (reading.raw_value("running"), reading.raw_value("queued")),
        (Some(1.0), Some(2.0))
    );
    assert_eq!(
        fake.tokens_issued.load(Ordering::SeqCst),
        0,
        "Airflow 2 never asks for a token"
    );
    let no_auth = AirflowSource::new(&AirflowSignal {
        api: base,
        version: AirflowApiVersion::V2,
        pool: Some("p".into()),
        queues: vec![],
        include_scheduled: false,
        http: HttpOptions::default(),
    });
    assert_eq!(no_auth.poll().await.unwrap_err().fault(), SignalFault::Auth);
}
