//! The daemon's HTTP surface (axum), one listener for everything:
//! `/metrics` (Prometheus text from the installed recorder), `/healthz` (the process serves),
//! `/readyz` (a tick completed and the loop has not stalled for 3 ticks), `/status` (JSON),
//! and the admin endpoint (`POST /admin/pools/{pool}/pause|resume`, see [`super::admin`]).

use std::sync::{Arc, RwLock};

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;

use super::admin::AdminPauses;
use super::controller::Clock;
use super::status::DaemonStatus;

#[derive(Clone)]
pub struct HttpState {
    pub board: Arc<RwLock<DaemonStatus>>,
    pub clock: Arc<dyn Clock>,
    /// `None` in tests that install no global recorder.
    pub prometheus: Option<PrometheusHandle>,
    /// Pauses set through the admin endpoint (shared with the controller).
    pub admin: AdminPauses,
    /// Bearer token for the admin endpoint from non-loopback peers (`admin_token_env`).
    pub admin_token: Option<String>,
}

pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/status", get(status))
        .route("/admin/pools/{pool}/pause", post(super::admin::pause))
        .route("/admin/pools/{pool}/resume", post(super::admin::resume))
        .with_state(state)
}

async fn metrics(State(s): State<HttpState>) -> Response {
    match &s.prometheus {
        Some(handle) => (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            handle.render(),
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no metrics recorder installed\n").into_response(),
    }
}

async fn readyz(State(s): State<HttpState>) -> Response {
    let verdict = s
        .board
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .readiness(s.clock.now());
    match verdict {
        Ok(()) => (StatusCode::OK, "ready\n".to_string()).into_response(),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        )
            .into_response(),
    }
}

async fn status(State(s): State<HttpState>) -> Json<DaemonStatus> {
    Json(s.board.read().unwrap_or_else(|p| p.into_inner()).clone())
}
