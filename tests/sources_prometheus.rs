//! The Prometheus query source against the real Prometheus (tests/peers/prometheus.sh): the test
//! serves a gauge whose value it controls, registers it for scraping (file service discovery),
//! and reads it back through `PrometheusSource` and `poolpilot probe`. Every answer that is not
//! one finite number (several series, none, a query Prometheus refuses, +Inf) is an error, so
//! the pool holds. Instant-query API:
//! <https://prometheus.io/docs/prometheus/latest/querying/api/#instant-queries>.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use poolpilot::engine::SignalFault;
use poolpilot::policy::{HttpOptions, PrometheusSignal};
use poolpilot::sources::prometheus::PrometheusSource;
use poolpilot::sources::{MetricSource, SourceError};
use poolpilot::time::Timestamp;
use support::prometheus::Target;
use support::wait_until;

/// `/metrics` with two series of `testqueue_depth`: `queue="etl"` (the value the test sets) and
/// `queue="adhoc"` (always 3), in the text exposition format.
async fn gauge(etl: Arc<Mutex<f64>>) -> std::net::SocketAddr {
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let v = *etl.lock().unwrap();
            async move {
                format!(
                    "# TYPE testqueue_depth gauge\ntestqueue_depth{{queue=\"etl\"}} {v}\ntestqueue_depth{{queue=\"adhoc\"}} 3\n"
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

fn source(url: &str, query: &str) -> PrometheusSource {
    PrometheusSource::new(&PrometheusSignal {
        url: url.to_string(),
        query: query.to_string(),
        http: HttpOptions {
            timeout: Duration::from_secs(2),
            ..HttpOptions::default()
        },
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_prometheus_query_is_the_demand_and_every_non_number_is_an_error() {
    let Some(prometheus) = support::peer("PROMETHEUS_URL") else {
        return;
    };
    let Some(sd_dir) = support::peer("PROMETHEUS_FILE_SD_DIR") else {
        return;
    };
    let etl = Arc::new(Mutex::new(17.0));
    let addr = gauge(etl.clone()).await;
    let job = format!("promsrc-{}", std::process::id());
    let _target = Target::scrape(&sd_dir, &job, addr);

    let one = Arc::new(source(
        &prometheus,
        &format!("testqueue_depth{{test=\"{job}\",queue=\"etl\"}}"),
    ));
    let read = |src: Arc<PrometheusSource>, want: f64| async move {
        matches!(src.poll().await, Ok(r) if r.demand == want)
    };
    assert!(
        wait_until(Duration::from_secs(45), || read(one.clone(), 17.0)).await,
        "Prometheus never returned 17: {:?}",
        one.poll().await
    );
    let reading = one.poll().await.unwrap();
    assert!(
        reading
            .labels
            .contains(&("queue".to_string(), "etl".to_string()))
            && reading.labels.contains(&("test".to_string(), job.clone())),
        "{:?}",
        reading.labels
    );

    // The test moves the gauge; the source follows within a few scrapes.
    *etl.lock().unwrap() = 42.0;
    assert!(
        wait_until(Duration::from_secs(20), || read(one.clone(), 42.0)).await,
        "Prometheus never returned 42: {:?}",
        one.poll().await
    );

    // Poll latency against the real server (recorded for the closing note).
    let mut latencies = Vec::new();
    for _ in 0..20 {
        let started = Timestamp::now();
        one.poll().await.unwrap();
        latencies.push(Timestamp::now().since(started).as_millis());
    }
    latencies.sort();
    eprintln!(
        "prometheus poll latency over 20 polls: median {} ms, max {} ms",
        latencies[10], latencies[19]
    );
    assert!(latencies[19] < 1000, "{latencies:?}");

    // sum() over both series: one number without labels.
    let sum = source(
        &prometheus,
        &format!("sum(testqueue_depth{{test=\"{job}\"}})"),
    );
    let r = sum.poll().await.unwrap();
    assert_eq!((r.demand, r.labels.len()), (45.0, 0));

    let expect_error = |q: String, fault: SignalFault, words: &'static str| {
        let prometheus = prometheus.clone();
        async move {
            let err: SourceError = source(&prometheus, &q).poll().await.unwrap_err();
            assert_eq!(err.fault(), fault, "{q}: {err}");
            assert!(err.to_string().contains(words), "{q}: {err}");
        }
    };
    expect_error(
        format!("testqueue_depth{{test=\"{job}\"}}"),
        SignalFault::Malformed,
        "2 series",
    )
    .await;
    expect_error(
        format!("testqueue_depth{{test=\"{job}\",queue=\"nosuch\"}}"),
        SignalFault::Malformed,
        "no series",
    )
    .await;
    expect_error(
        format!("sum(testqueue_depth{{test=\"{job}\"}}"),
        SignalFault::HttpStatus,
        "bad_data",
    )
    .await;
    expect_error(
        format!("scalar(testqueue_depth{{test=\"{job}\",queue=\"etl\"}}) / 0"),
        SignalFault::Malformed,
        "+Inf",
    )
    .await;
    expect_error(
        format!("testqueue_depth{{test=\"{job}\",queue=\"etl\"}}[1m]"),
        SignalFault::Malformed,
        "matrix",
    )
    .await;

    // `poolpilot probe` shows the value and the series' labels.
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("prom.yaml");
    std::fs::write(
        &policy,
        format!(
            "pool: prom\nsignals:\n  - prometheus:\n      url: {prometheus}\n      query: 'testqueue_depth{{test=\"{job}\",queue=\"etl\"}}'\n    per_worker: 10\n\
             workers:\n  kubernetes: {{ namespace: ns, deployment: w }}\nbounds: {{ min: 1, max: 9 }}\nscale_down: {{ drain: {{ method: none }} }}\n"
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_poolpilot"))
        .arg("probe")
        .arg(&policy)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("demand   42 (per_worker 10 → 5 workers"),
        "{text}"
    );
    assert!(text.contains("queue=\"etl\""), "{text}");
    assert!(text.contains(&format!("test=\"{job}\"")), "{text}");
    eprintln!("{text}");
}
