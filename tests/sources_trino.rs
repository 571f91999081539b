//! Trino and PrestoDB sources against the coordinator fixture (no real server is installable
//! here): every endpoint, both dialects, auth modes, 403, 503 and old field sets.

mod support;

use poolpilot::engine::SignalFault;
use poolpilot::policy::{self, SignalSpec};
use poolpilot::sources::{self, Reading, SourceError};
use support::trino_fixture::{Dialect, TrinoFixture};

const MIX: &[(&str, bool)] = &[
    ("QUEUED", false),
    ("QUEUED", false),
    ("QUEUED", false),
    ("WAITING_FOR_RESOURCES", false),
    ("WAITING_FOR_RESOURCES", false),
    ("PLANNING", false),
    ("RUNNING", false),
    ("RUNNING", true),
    ("FINISHING", false),
    ("FINISHED", false),
    ("FAILED", false),
];

fn spec(signal_yaml: &str) -> SignalSpec {
    let text = format!(
        "pool: t\nsignals:\n  - {signal_yaml}\n    per_worker: 1\nworkers:\n  kubernetes: {{ namespace: ns, deployment: w }}\nbounds: {{ min: 0, max: 10 }}\nscale_to_zero: {{}}\n"
    );
    policy::load_str(&text, "t.yaml")
        .unwrap_or_else(|e| panic!("{e}\n{text}"))
        .spec
        .signals
        .remove(0)
}

async fn poll(signal_yaml: &str) -> Result<Reading, SourceError> {
    sources::build(&spec(signal_yaml)).poll().await
}

#[tokio::test]
async fn trino_query_endpoint_sees_waiting_for_resources() {
    let fx = TrinoFixture::start(Dialect::Trino).await;
    fx.set_queries(MIX);
    let r = poll(&format!(
        "trino: {{ coordinator: '{}', endpoint: query }}",
        fx.base
    ))
    .await
    .unwrap();
    assert_eq!(r.raw_value("queued"), Some(3.0));
    assert_eq!(r.raw_value("waiting_for_resources"), Some(2.0));
    assert_eq!(r.raw_value("starting"), Some(1.0));
    assert_eq!(r.raw_value("running"), Some(2.0)); // RUNNING + FINISHING
    assert_eq!(r.raw_value("blocked"), Some(1.0));
    assert_eq!(r.demand, 9.0);
    let r = poll(&format!(
        "trino: {{ coordinator: '{}', endpoint: query, include_blocked: false }}",
        fx.base
    ))
    .await
    .unwrap();
    assert_eq!(r.demand, 8.0);
}

#[tokio::test]
async fn zero_workers_with_only_waiting_for_resources_is_demand() {
    // The scale-from-zero case: the stats counters are all 0, /v1/query is not.
    let fx = TrinoFixture::start(Dialect::Trino).await;
    fx.set_queries(&[("WAITING_FOR_RESOURCES", false)]);
    fx.configure(|c| c.active_workers = 0);
    let from_query = poll(&format!("trino: {{ coordinator: '{}' }}", fx.base))
        .await
        .unwrap();
    let from_stats = poll(&format!(
        "trino: {{ coordinator: '{}', endpoint: ui_stats }}",
        fx.base
    ))
    .await
    .unwrap();
    assert_eq!((from_query.demand, from_stats.demand), (1.0, 0.0));
}

#[tokio::test]
async fn trino_ui_stats_and_metrics_agree_with_the_fixture_counters() {
    let fx = TrinoFixture::start(Dialect::Trino).await;
    fx.set_queries(MIX);
    let stats = poll(&format!(
        "trino: {{ coordinator: '{}', endpoint: ui_stats }}",
        fx.base
    ))
    .await
    .unwrap();
    assert_eq!(
        (
            stats.raw_value("queued"),
            stats.raw_value("running"),
            stats.raw_value("blocked")
        ),
        (Some(3.0), Some(1.0), Some(1.0))
    );
    assert_eq!(
        (stats.demand, stats.raw_value("active_workers")),
        (5.0, Some(4.0))
    );
    let metrics = poll(&format!(
        "trino: {{ coordinator: '{}', endpoint: metrics }}",
        fx.base
    ))
    .await
    .unwrap();
    assert_eq!(
        (metrics.raw_value("queued"), metrics.raw_value("running")),
        (Some(3.0), Some(1.0))
    );
    assert_eq!(metrics.demand, 4.0);
}

#[tokio::test]
async fn trino_ui_login_required_is_an_auth_fault() {
    let fx = TrinoFixture::start(Dialect::Trino).await;
    fx.configure(|c| c.ui_needs_login = true);
    let err = poll(&format!(
        "trino: {{ coordinator: '{}', endpoint: ui_stats }}",
        fx.base
    ))
    .await
    .unwrap_err();
    assert_eq!(err.fault(), SignalFault::Auth, "{err}");
    assert!(err.to_string().contains("401"), "{err}");
}

#[tokio::test]
async fn basic_credentials_ride_along_with_the_user_header_and_403_is_auth() {
    let fx = TrinoFixture::start(Dialect::Trino).await;
    // SAFETY: this binary's only env write, before any read.
    unsafe { std::env::set_var("POOLPILOT_TRINO_TEST_PW", "pw") };
    let with_password = format!(
        "trino: {{ coordinator: '{}', http: {{ auth: {{ basic: {{ username: bob, password: {{ env: POOLPILOT_TRINO_TEST_PW }} }} }} }} }}",
        fx.base
    );
    // The X-Trino-User header is sent too, so the fixture accepts the user from it.
    assert!(poll(&with_password).await.is_ok());
    fx.configure(|c| c.forbidden = true);
    let err = poll(&format!("trino: {{ coordinator: '{}' }}", fx.base))
        .await
        .unwrap_err();
    assert_eq!(err.fault(), SignalFault::Auth);
}

#[tokio::test]
async fn presto_cluster_current_old_and_resource_manager_down() {
    let fx = TrinoFixture::start(Dialect::Presto).await;
    fx.set_queries(MIX);
    let yaml = format!("presto: {{ coordinator: '{}' }}", fx.base);
    let r = poll(&yaml).await.unwrap();
    assert_eq!(
        (
            r.raw_value("queued"),
            r.raw_value("running"),
            r.raw_value("blocked")
        ),
        (Some(3.0), Some(1.0), Some(1.0))
    );
    assert_eq!(r.demand, 5.0);
    fx.configure(|c| c.old_presto = true);
    assert_eq!(poll(&yaml).await.unwrap().demand, 5.0);
    fx.configure(|c| c.no_resource_manager = true);
    let err = poll(&yaml).await.unwrap_err();
    assert_eq!(err.fault(), SignalFault::HttpStatus);
    assert!(err.to_string().contains("503"), "{err}");
}

#[tokio::test]
async fn each_dialect_needs_its_own_user_header() {
    // A Presto source against a Trino coordinator sends X-Presto-User only: 401 / 404, never data.
    let trino = TrinoFixture::start(Dialect::Trino).await;
    let err = poll(&format!("presto: {{ coordinator: '{}' }}", trino.base))
        .await
        .unwrap_err();
    assert_eq!(err.fault(), SignalFault::HttpStatus); // Trino has no /v1/cluster
    let presto = TrinoFixture::start(Dialect::Presto).await;
    presto.set_queries(MIX);
    let r = poll(&format!("trino: {{ coordinator: '{}' }}", presto.base)).await;
    assert_eq!(r.unwrap_err().fault(), SignalFault::Auth); // X-Trino-User means nothing to Presto
    assert!(presto.requests().iter().all(|p| p == "/v1/query"));
}
