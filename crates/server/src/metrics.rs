//! `GET /metrics`: the studies and the server in Prometheus' text format (OpenMetrics),
//! encoded by `prometheus-client`. docs/monitoring.md lists every metric.
//!
//! A scrape costs a few index look-ups per study, never a read of every trial:
//! - the trials by state and the last activity come from one aggregate read
//!   (`Storage::study_counts`);
//! - what is told of finished trials (their count by state, durations, epochs
//!   trained and saved, the best value, the devices they ran on) is folded in as
//!   they finish: each scrape reads only the trials finished since the last one
//!   (`FinishedFeed`), and the server keeps the sums. The first scrape after a
//!   start reads every finished trial once;
//! - the running trials (few) are read whole, for the workers' heartbeats and the
//!   devices in use.
//!
//! Per route: the server's requests by status and their latency.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hpo_core::run::FinishedFeed;
use hpo_core::run::external::EXTERNAL_OWNER;
use hpo_core::spec::{ObjectiveSpec, StudySpec};
use hpo_core::storage::Storage;
use hpo_core::study::{Direction, Study, StudyId, StudySummary};
use hpo_core::trial::{AttrValue, FrozenTrial, Timestamp, TrialState, attr};
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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SavedLabels {
    study: String,
    by: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WorkerLabels {
    worker: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeviceLabels {
    device: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeviceStateLabels {
    device: String,
    state: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

type LatencyFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 0.5 ms to about 16 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

type DurationFamily = Family<StudyLabels, Histogram, fn() -> Histogram>;

fn duration_histogram() -> Histogram {
    // 0.1 s to about 3.6 hours.
    Histogram::new(exponential_buckets(0.1, 2.0, 18))
}

/// The server's request counts and latencies, kept as requests are answered, and
/// the sums over each study's finished trials, kept as scrapes see them finish.
#[derive(Clone)]
pub struct ServerMetrics {
    requests: Family<StatusLabels, Counter>,
    latency: LatencyFamily,
    studies: Arc<Mutex<Studies>>,
    scheduled: ScheduledNights,
}

impl Default for ServerMetrics {
    fn default() -> Self {
        ServerMetrics::with_scheduled(ScheduledNights::default())
    }
}

/// What the service's scheduler (`hpo serve --schedule`) last did for each nightly
/// study: the exit code of its last night and when that night ended (Unix time).
/// The scheduler writes it; `/metrics` tells it.
pub type ScheduledNights = Arc<Mutex<BTreeMap<String, (i32, f64)>>>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NightLabels {
    study: String,
    verdict: String,
}

impl ServerMetrics {
    /// Metrics that also tell what the scheduler wrote into `scheduled`.
    pub fn with_scheduled(scheduled: ScheduledNights) -> ServerMetrics {
        ServerMetrics {
            requests: Family::default(),
            latency: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            studies: Arc::default(),
            scheduled,
        }
    }

    /// The latest night of each nightly study (`hpo nightly`: studies named
    /// `NAME@YYYY-MM-DD` that say they are nights of `NAME`): its verdict against
    /// the night before, whether that is a regression, and when it last ran; and
    /// the scheduler's last exit code per study. One attribute read per nightly
    /// study.
    fn nightly(
        &self,
        storage: &dyn Storage,
        summaries: &[StudySummary],
        registry: &mut Registry,
    ) -> Result<(), ApiError> {
        use hpo_report::load::{NIGHT_OF, NIGHT_VERDICT, night_date};
        let verdicts = Family::<NightLabels, Gauge>::default();
        let regressed = Family::<StudyLabels, Gauge>::default();
        let last_night = Family::<StudyLabels, FloatGauge>::default();
        let exit_codes = Family::<StudyLabels, Gauge>::default();
        let ended = Family::<StudyLabels, FloatGauge>::default();
        let mut latest: BTreeMap<&str, (&str, &StudySummary)> = BTreeMap::new();
        for summary in summaries {
            let Some((base, _)) = summary.study.name.rsplit_once('@') else { continue };
            let Some(date) = night_date(&summary.study.name, base) else { continue };
            if latest.get(base).is_none_or(|(newest, _)| *newest < date) {
                latest.insert(base, (date, summary));
            }
        }
        for (base, (_, summary)) in latest {
            let attrs = storage.study_user_attrs(summary.study.id)?;
            if attrs.get(NIGHT_OF) != Some(&AttrValue::Str(base.to_owned())) {
                continue;
            }
            let verdict = match attrs.get(NIGHT_VERDICT) {
                Some(AttrValue::Str(word)) => word.clone(),
                _ => "none".to_owned(),
            };
            let labels = StudyLabels { study: base.to_owned() };
            regressed.get_or_create(&labels).set(i64::from(verdict == "worse_beyond_noise"));
            verdicts.get_or_create(&NightLabels { study: base.to_owned(), verdict }).set(1);
            if let Some(at) = summary.last_activity {
                last_night.get_or_create(&labels).set(at.0 as f64 / 1e6);
            }
        }
        for (base, (code, at)) in self.scheduled.lock().unwrap_or_else(|it| it.into_inner()).iter()
        {
            let labels = StudyLabels { study: base.clone() };
            exit_codes.get_or_create(&labels).set(i64::from(*code));
            ended.get_or_create(&labels).set(*at);
        }
        registry.register(
            "hpo_nightly_verdict",
            "The latest night of each nightly study: 1 for its verdict against the night before (better, same, worse_within_noise, worse_beyond_noise, first_night; none while it runs or when it failed)",
            verdicts,
        );
        registry.register(
            "hpo_nightly_regression",
            "1 when the latest night of a nightly study is worse than the night before beyond the seed noise",
            regressed,
        );
        registry.register(
            "hpo_nightly_last_night_activity_timestamp_seconds",
            "When a trial of the latest night of a nightly study last started or finished (Unix time)",
            last_night,
        );
        registry.register(
            "hpo_nightly_scheduled_exit_code",
            "The exit code of the last night the scheduler of hpo serve ran for a study (0 not worse, 1 worse, 2 bad input, 3 an error)",
            exit_codes,
        );
        registry.register(
            "hpo_nightly_scheduled_end_timestamp_seconds",
            "When the last night the scheduler of hpo serve ran for a study ended (Unix time)",
            ended,
        );
        Ok(())
    }
}

/// The finished trials folded in so far, per study.
struct Studies {
    tallies: HashMap<StudyId, Tally>,
    finished: Family<StudyStateLabels, Counter>,
    durations: DurationFamily,
    epochs_trained: Family<StudyLabels, Counter>,
    epochs_saved: Family<SavedLabels, Counter>,
}

impl Default for Studies {
    fn default() -> Self {
        Studies {
            tallies: HashMap::new(),
            finished: Family::default(),
            durations: Family::new_with_constructor(duration_histogram as fn() -> Histogram),
            epochs_trained: Family::default(),
            epochs_saved: Family::default(),
        }
    }
}

/// One study's sums over its finished trials.
struct Tally {
    feed: FinishedFeed,
    direction: Direction,
    /// The epochs a trial trains unless stopped early, when the study says.
    max_epochs: Option<u64>,
    best: Option<f64>,
    last_finished: Option<Timestamp>,
    /// Per device: finished trials, and the sum and count of measured footprints.
    devices: BTreeMap<String, (u64, f64, u64)>,
}

/// The states a scrape folds in.
const FINISHED: [TrialState; 3] = [TrialState::Complete, TrialState::Pruned, TrialState::Fail];

impl Tally {
    fn new(study: &Study) -> Tally {
        let spec = study.spec_text.as_deref().and_then(|text| StudySpec::parse(text, "").ok());
        let max_epochs = spec.and_then(|spec| match spec.objective {
            ObjectiveSpec::Training(candle) => Some(u64::from(candle.max_epochs)),
            ObjectiveSpec::Function { steps, .. } => Some(steps),
            ObjectiveSpec::External | ObjectiveSpec::Command(_) => None,
        });
        Tally {
            feed: FinishedFeed::default(),
            direction: study.direction,
            max_epochs,
            best: None,
            last_finished: None,
            devices: BTreeMap::new(),
        }
    }
}

impl Studies {
    /// Folds finished `trial` of `study` into the sums.
    fn fold(&self, tally: &mut Tally, study: &str, trial: &FrozenTrial) {
        let labels = StudyLabels { study: study.to_owned() };
        let state = StudyStateLabels { study: study.to_owned(), state: trial.state.to_string() };
        self.finished.get_or_create(&state).inc();
        tally.last_finished = tally.last_finished.max(trial.datetime_complete);
        if let (Some(start), Some(end)) = (trial.datetime_start, trial.datetime_complete) {
            let seconds = (end.0 - start.0).max(0) as f64 / 1e6;
            self.durations.get_or_create(&labels).observe(seconds);
        }
        let trained = trial.intermediate_values.keys().next_back().copied().unwrap_or(0);
        self.epochs_trained.get_or_create(&labels).inc_by(trained);
        let ended_by = trial.system_attrs.get(attr::ENDED_BY).and_then(AttrValue::as_str);
        let saved_by = match (trial.state, ended_by) {
            (TrialState::Pruned, _) => Some("pruning"),
            (TrialState::Complete, Some("early_stopping")) => Some("early_stopping"),
            _ => None,
        };
        if let (Some(by), Some(max)) = (saved_by, tally.max_epochs) {
            let labels = SavedLabels { study: study.to_owned(), by: by.to_owned() };
            self.epochs_saved.get_or_create(&labels).inc_by(max.saturating_sub(trained));
        }
        if let (TrialState::Complete, Some(value), None) =
            (trial.state, trial.value, trial.confirm_of())
            && value.is_finite()
        {
            tally.best = Some(match (tally.best, tally.direction) {
                (Some(best), Direction::Minimize) => best.min(value),
                (Some(best), Direction::Maximize) => best.max(value),
                (None, _) => value,
            });
        }
        if let Some(device) = trial.system_attrs.get(attr::DEVICE).and_then(AttrValue::as_str) {
            let entry = tally.devices.entry(device.to_owned()).or_default();
            entry.0 += 1;
            if let Some(mb) = trial.user_attrs.get("gpu_memory_mb").and_then(AttrValue::as_f64) {
                entry.1 += mb * 1e6;
                entry.2 += 1;
            }
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
        let best = Family::<StudyLabels, FloatGauge>::default();
        let last = Family::<StudyLabels, FloatGauge>::default();
        let last_finished = Family::<StudyLabels, FloatGauge>::default();
        let heartbeat_age = Family::<WorkerLabels, FloatGauge>::default();
        let device_trials = Family::<DeviceStateLabels, Gauge>::default();
        let device_memory = Family::<DeviceLabels, FloatGauge>::default();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_micros() as i64;
        let mut studies = self.studies.lock().unwrap_or_else(|it| it.into_inner());
        let studies = &mut *studies;
        let mut placed: BTreeMap<String, (i64, i64)> = BTreeMap::new();
        let mut memory: BTreeMap<String, (f64, u64)> = BTreeMap::new();
        let mut workers: BTreeMap<String, f64> = BTreeMap::new();
        let summaries = storage.study_counts()?;
        for summary in &summaries {
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
            let mut tally = match studies.tallies.remove(&summary.study.id) {
                Some(tally) => tally,
                None => {
                    // Every state's counter exists from the start, so a rate of
                    // failures reads 0, not nothing, before the first failure.
                    for state in FINISHED {
                        let state = state.to_string();
                        let labels = StudyStateLabels { study: study.clone(), state };
                        let _ = studies.finished.get_or_create(&labels);
                    }
                    Tally::new(&summary.study)
                }
            };
            let new = tally.feed.read_new(storage, summary.study.id, &FINISHED);
            let new = match new {
                Ok(new) => new,
                Err(err) => {
                    studies.tallies.insert(summary.study.id, tally);
                    return Err(err.into());
                }
            };
            for trial in &new {
                studies.fold(&mut tally, &study, trial);
            }
            let labels = StudyLabels { study: study.clone() };
            if let Some(value) = tally.best {
                best.get_or_create(&labels).set(value);
            }
            if let Some(at) = summary.last_activity {
                last.get_or_create(&labels).set(at.0 as f64 / 1e6);
            }
            if let Some(at) = tally.last_finished {
                last_finished.get_or_create(&labels).set(at.0 as f64 / 1e6);
            }
            for (device, (finished, bytes, measured)) in &tally.devices {
                placed.entry(device.clone()).or_default().1 += *finished as i64;
                let entry = memory.entry(device.clone()).or_default();
                entry.0 += bytes;
                entry.1 += measured;
            }
            let running = if summary.n_running > 0 {
                storage.trials(summary.study.id, Some(&[TrialState::Running]))
            } else {
                Ok(Vec::new())
            };
            studies.tallies.insert(summary.study.id, tally);
            for trial in running? {
                if let Some(device) =
                    trial.system_attrs.get(attr::DEVICE).and_then(AttrValue::as_str)
                {
                    placed.entry(device.to_owned()).or_default().0 += 1;
                }
                let Some(owner) = trial.system_attrs.get(attr::OWNER).and_then(AttrValue::as_str)
                else {
                    continue;
                };
                // Scripts told through `hpo ask` beat no heart.
                if owner == EXTERNAL_OWNER {
                    continue;
                }
                let Some(beat) = storage.last_heartbeat(trial.id)? else { continue };
                let age = (now - beat.0).max(0) as f64 / 1e6;
                let worker = worker_name(owner);
                let freshest = workers.entry(worker).or_insert(age);
                *freshest = freshest.min(age);
            }
        }
        for (worker, age) in workers {
            heartbeat_age.get_or_create(&WorkerLabels { worker }).set(age);
        }
        for (device, (running, finished)) in placed {
            for (state, n) in [("running", running), ("finished", finished)] {
                let labels = DeviceStateLabels { device: device.clone(), state: state.to_owned() };
                device_trials.get_or_create(&labels).set(n);
            }
        }
        for (device, (bytes, measured)) in memory {
            if measured > 0 {
                device_memory.get_or_create(&DeviceLabels { device }).set(bytes / measured as f64);
            }
        }
        self.nightly(storage, &summaries, &mut registry)?;
        registry.register("hpo_trials", "Trials of each study, by state", trials);
        registry.register(
            "hpo_trials_finished",
            "Trials of each study that finished, by state",
            studies.finished.clone(),
        );
        registry.register(
            "hpo_trial_duration_seconds",
            "Wall time of each study's finished trials, from start to end",
            studies.durations.clone(),
        );
        registry.register(
            "hpo_epochs_trained",
            "Epochs (reported steps) that each study's finished trials trained",
            studies.epochs_trained.clone(),
        );
        registry.register(
            "hpo_epochs_saved",
            "Epochs not trained because the pruner or early stopping ended a trial before the study's max_epochs",
            studies.epochs_saved.clone(),
        );
        registry.register("hpo_best_value", "The best value among a study's complete trials", best);
        registry.register(
            "hpo_last_activity_timestamp_seconds",
            "When a trial of the study last started or finished (Unix time)",
            last,
        );
        registry.register(
            "hpo_last_finished_timestamp_seconds",
            "When a trial of the study last finished (Unix time)",
            last_finished,
        );
        registry.register(
            "hpo_worker_heartbeat_age_seconds",
            "Seconds since a worker process with running trials last beat (its freshest trial)",
            heartbeat_age,
        );
        registry.register(
            "hpo_device_trials",
            "Trials placed on each device, running now or finished",
            device_trials,
        );
        registry.register(
            "hpo_device_trial_memory_bytes",
            "Mean measured device memory of a trial on each GPU",
            device_memory,
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

/// A worker's name from a trial's owner, `host:pid:start`: `host:pid`.
fn worker_name(owner: &str) -> String {
    match owner.rsplit_once(':') {
        Some((worker, _)) if worker.contains(':') => worker.to_owned(),
        _ => owner.to_owned(),
    }
}

/// The answer's content type: OpenMetrics text, which Prometheus reads.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Shared by the app's handlers and middleware.
pub type Shared = Arc<ServerMetrics>;

#[cfg(test)]
mod tests {
    use hpo_core::memory::InMemoryStorage;
    use hpo_core::testing::gpu_study;

    use super::ServerMetrics;

    fn line<'a>(text: &'a str, start: &str) -> &'a str {
        text.lines()
            .find(|l| l.starts_with(start))
            .unwrap_or_else(|| panic!("no {start} in\n{text}"))
    }

    /// Devices, workers' heartbeats and the epochs that pruning and early stopping
    /// saved, from trials as `hpo run` leaves them; folded in once each.
    #[test]
    fn devices_heartbeats_and_saved_epochs_come_from_the_trials() {
        let storage = InMemoryStorage::default();
        gpu_study(&storage);
        let metrics = ServerMetrics::default();
        for _ in 0..2 {
            // A second scrape counts nothing twice.
            let text = metrics.render(&storage).unwrap();
            assert!(
                line(&text, "hpo_device_trials{device=\"cuda:0\",state=\"finished\"}")
                    .ends_with(" 2")
            );
            assert!(
                line(&text, "hpo_device_trials{device=\"cuda:1\",state=\"running\"}")
                    .ends_with(" 1")
            );
            let memory = line(&text, "hpo_device_trial_memory_bytes{device=\"cuda:0\"}");
            assert!(memory.ends_with(" 200000000.0"), "{memory}");
            assert!(!text.contains("hpo_device_trial_memory_bytes{device=\"cuda:1\"}"), "{text}");
            assert!(line(&text, "hpo_epochs_trained_total{study=\"gpu\"}").ends_with(" 19"));
            let pruning = line(&text, "hpo_epochs_saved_total{study=\"gpu\",by=\"pruning\"}");
            assert!(pruning.ends_with(" 7"), "{pruning}");
            let early = line(&text, "hpo_epochs_saved_total{study=\"gpu\",by=\"early_stopping\"}");
            assert!(early.ends_with(" 4"), "{early}");
            assert!(line(&text, "hpo_best_value{study=\"gpu\"}").ends_with(" 6.0"));
            let age = line(&text, "hpo_worker_heartbeat_age_seconds{worker=\"node1:7\"}");
            // The in-memory store's clock counts from 0: the age is all of Unix time.
            let age: f64 = age.rsplit(' ').next().unwrap().parse().unwrap();
            assert!(age > 1.7e9, "{age}");
        }
    }
}
