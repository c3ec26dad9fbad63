//! `hpo serve`: the HTTP API over a study database, beside the `hpo run` and `hpo
//! worker` processes that write it.
//!
//! The only async crate of hpo: a tokio runtime and axum routes. Handlers run store
//! calls on tokio's blocking threads; the store, the samplers and the pruners stay
//! plain synchronous code. docs/api.md documents the endpoints.
//!
//! - `api` — the `/api/v1` routes: studies, trials, ask / report a step / tell.
//! - `auth` — tokens (`read`, `write`) and who may call what.
//! - `dashboard` — the browser pages and their embedded script and style
//!   (docs/dashboard.md).
//! - `error` — every error answer is JSON `{"error", "detail"}` with its status.
//! - `metrics` — `GET /metrics` for Prometheus.
//! - `report` — the report's computations as JSON.
//! - `views` — the dashboard's reads (trial table, report, running trials),
//!   kept per study version.
#![forbid(unsafe_code)]

pub mod api;
pub mod auth;
pub mod dashboard;
pub mod error;
pub mod metrics;
pub mod report;
pub mod views;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing;
use hpo_core::storage::Storage;
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{DefaultPredicate, Predicate, SizeAbove};

use crate::api::AppState;
use crate::auth::{Access, Tokens};

/// How `hpo serve` runs.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// The address to listen on.
    pub bind: SocketAddr,
    /// The accepted tokens; `None` serves loopback only, everything open.
    pub tokens: Option<Tokens>,
    /// Whether the read endpoints need no token.
    pub public_read: bool,
    /// The largest request body, in bytes.
    pub body_limit: usize,
    /// Where command trials keep their folders (their program's output), if the
    /// database has such a place.
    pub trials_root: Option<std::path::PathBuf>,
    /// What the service's scheduler (`--schedule`) writes of the nights it ran, for
    /// `/metrics`.
    pub scheduled: metrics::ScheduledNights,
}

/// The largest request body by default: a study file or a step is far smaller.
pub const DEFAULT_BODY_LIMIT: usize = 1 << 20;

/// Why the server did not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A non-loopback address without tokens.
    #[error(
        "refusing to listen on {0} without --tokens: anyone who can reach it could write trials; give a tokens file (`TOKEN write` lines, chmod 600), or bind 127.0.0.1"
    )]
    OpenWithoutTokens(SocketAddr),
    /// The address cannot be listened on.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The runtime or the server failed.
    #[error("the server stopped: {0}")]
    Io(#[from] std::io::Error),
}

/// The app: `/api/v1` and the request log, over `storage`.
pub fn app(
    storage: Arc<dyn Storage>,
    access: Access,
    body_limit: usize,
    trials_root: Option<std::path::PathBuf>,
    scheduled: metrics::ScheduledNights,
) -> Router {
    let state = AppState {
        storage,
        access,
        metrics: Arc::new(metrics::ServerMetrics::with_scheduled(scheduled)),
        studies: Arc::default(),
        views: Arc::default(),
        trials_root: trials_root.map(Arc::new),
        body_limit,
    };
    Router::new()
        .nest("/api/v1", api::routes())
        .route("/metrics", routing::get(get_metrics))
        .merge(dashboard::routes())
        .route_layer(middleware::from_fn_with_state(state.clone(), count_request))
        .fallback(|| async {
            error::ApiError::not_found("no such endpoint; docs/api.md lists them under /api/v1")
        })
        .layer(DefaultBodyLimit::max(body_limit))
        // gzip for the pages and the large reads (a study's table, its report);
        // the small answers of ask, step and tell are sent as they are.
        .layer(
            CompressionLayer::new()
                .compress_when(DefaultPredicate::new().and(SizeAbove::new(1024))),
        )
        .layer(middleware::from_fn(log_request))
        .with_state(state)
}

/// `GET /metrics`: a read endpoint (a read token unless `--public-read`).
async fn get_metrics(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, error::ApiError> {
    state.access.check(&headers, auth::Role::Read)?;
    let (storage, metrics) = (Arc::clone(&state.storage), Arc::clone(&state.metrics));
    let text = tokio::task::spawn_blocking(move || metrics.render(storage.as_ref()))
        .await
        .map_err(|err| error::ApiError::internal(format!("the scrape stopped: {err}")))??;
    Ok(([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response())
}

/// A route's pattern as a label: `/api/v1/studies/:study/ask` (braces in label
/// values trip simple text-format parsers).
fn route_label(pattern: &str) -> String {
    pattern.replace('{', ":").replace('}', "")
}

/// Counts each request to a route, by its pattern, method and status.
async fn count_request(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = metrics::RouteLabels {
        method: request.method().to_string(),
        route: request
            .extensions()
            .get::<MatchedPath>()
            .map_or_else(|| "unmatched".to_owned(), |it| route_label(it.as_str())),
    };
    let started = Instant::now();
    let response = next.run(request).await;
    state.metrics.observe(route, response.status().as_u16(), started.elapsed());
    response
}

/// Logs each request's method, path, status and time (never its headers: they
/// carry tokens).
async fn log_request(request: Request, next: Next) -> Response {
    let (method, path) = (request.method().clone(), request.uri().path().to_owned());
    let started = Instant::now();
    let response = next.run(request).await;
    tracing::info!(
        %method,
        path,
        status = response.status().as_u16(),
        ms = started.elapsed().as_secs_f64() * 1e3,
        "request"
    );
    response
}

/// Serves `storage` until Ctrl-C or SIGTERM: then stops accepting, lets the
/// requests in flight finish, and returns. `ready` is called with the address
/// listened on (the port chosen, for `:0`) once requests are accepted.
pub fn serve(
    storage: Arc<dyn Storage>,
    config: ServeConfig,
    ready: impl FnOnce(SocketAddr),
) -> Result<(), ServeError> {
    if config.tokens.is_none() && !config.bind.ip().is_loopback() {
        return Err(ServeError::OpenWithoutTokens(config.bind));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(config.bind)
            .await
            .map_err(|source| ServeError::Bind { addr: config.bind, source })?;
        let addr = listener.local_addr()?;
        let access = Access { tokens: config.tokens, public_read: config.public_read };
        let app = app(storage, access, config.body_limit, config.trials_root, config.scheduled);
        ready(addr);
        axum::serve(listener, app).with_graceful_shutdown(shutdown_signal()).await?;
        Ok(())
    })
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("stopping: finishing the requests in flight");
}
