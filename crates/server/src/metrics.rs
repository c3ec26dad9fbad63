//! `GET /metrics`: the studies and the server in Prometheus' text format (OpenMetrics),
//! encoded by `prometheus-client`.
//!
//! Per study, from one aggregate read of the store (`Storage::list_studies`): trials
//! by state, the best value, and when a trial last started or finished (for "the
//! nightly sweep stalled" alerts). Per route: the server's requests by status and
//! their latency.

use std::sync::Arc;
use std::time::Duration;

use hpo_core::storage::Storage;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::error::ApiError;

/// A request's route (its pattern, not its path) and method.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// The HTTP method.
    pub method: String,
    /// The route's pattern, like `/api/v1/studies/:study/ask`.
    pub route: String,
}

/// A request's route, method and status.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabels {
    /// The HTTP method.
    pub method: String,
    /// The route's pattern.
    pub route: String,
    /// The answer's status code.
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StudyLabels {
    study: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StudyStateLabels {
    study: String,
    state: String,
}

type LatencyFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 0.5 ms to about 16 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// The server's own request counts and latencies, kept as requests are answered.
#[derive(Clone)]
pub struct ServerMetrics {
    requests: Family<StatusLabels, Counter>,
    latency: LatencyFamily,
}

impl Default for ServerMetrics {
    fn default() -> Self {
        ServerMetrics {
            requests: Family::default(),
            latency: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
        }
    }
}

impl ServerMetrics {
    /// Counts one answered request.
    pub fn observe(&self, route: RouteLabels, status: u16, took: Duration) {
        let labels = StatusLabels {
            method: route.method.clone(),
            route: route.route.clone(),
            status: status.to_string(),
        };
        self.requests.get_or_create(&labels).inc();
        self.latency.get_or_create(&route).observe(took.as_secs_f64());
    }

    /// Everything `/metrics` answers: the studies as the store has them now, and the
    /// server's requests so far.
    pub fn render(&self, storage: &dyn Storage) -> Result<String, ApiError> {
        let mut registry = Registry::default();
        let trials = Family::<StudyStateLabels, Gauge>::default();
        let best = Family::<StudyLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        let last = Family::<StudyLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        for summary in storage.list_studies()? {
            let study = summary.study.name.clone();
            let counts = [
                ("complete", summary.n_complete),
                ("pruned", summary.n_pruned),
                ("fail", summary.n_fail),
                ("running", summary.n_running),
                ("waiting", summary.n_waiting),
            ];
            for (state, n) in counts {
                let labels = StudyStateLabels { study: study.clone(), state: state.to_owned() };
                trials.get_or_create(&labels).set(i64::try_from(n).unwrap_or(i64::MAX));
            }
            let labels = StudyLabels { study };
            if let Some(value) = summary.best_value {
                best.get_or_create(&labels).set(value);
            }
            if let Some(at) = summary.last_activity {
                last.get_or_create(&labels).set(at.0 as f64 / 1e6);
            }
        }
        registry.register("hpo_trials", "Trials of each study, by state", trials);
        registry.register("hpo_best_value", "The best value among a study's complete trials", best);
        registry.register(
            "hpo_last_activity_timestamp_seconds",
            "When a trial of the study last started or finished (Unix time)",
            last,
        );
        registry.register(
            "hpo_http_requests",
            "Requests answered by hpo serve, by route, method and status",
            self.requests.clone(),
        );
        registry.register(
            "hpo_http_request_duration_seconds",
            "Time to answer a request, by route and method",
            self.latency.clone(),
        );
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry)
            .map_err(|err| ApiError::internal(format!("cannot encode the metrics: {err}")))?;
        Ok(text)
    }
}

/// The answer's content type: OpenMetrics text, which Prometheus reads.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Shared by the app's handlers and middleware.
pub type Shared = Arc<ServerMetrics>;
