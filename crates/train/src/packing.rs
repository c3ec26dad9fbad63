//! How many trials one GPU runs at once under `trials_per_device = "auto"`, by
//! measured throughput ([`Packing`]): one trial of a small model leaves a GPU
//! mostly idle (its steps are bound by kernel launches), and several at once then
//! train faster in all, while one trial of a larger model keeps the GPU busy and
//! more at once only slow each other down.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The shortest time a number of trials at once is measured for.
pub const WINDOW: Duration = Duration::from_secs(1);

/// The trials that finish within a measurement, per trial at once (and at least
/// [`WINDOW_TRIALS_MIN`]): trials differ in size (a study draws them at random),
/// so a measurement spans several of each lane's.
pub const WINDOW_TRIALS_PER_LANE: usize = 2;

/// The fewest trials that finish within a measurement.
pub const WINDOW_TRIALS_MIN: usize = 4;

/// The longest a measurement waits for its trials to finish: a study of long
/// trials is measured by the examples they train meanwhile.
pub const WINDOW_MAX: Duration = Duration::from_secs(30);

/// How much faster in all twice as many trials at once must train to be kept:
/// less would be within what the trials' different sizes move a window.
pub const GAIN: f64 = 1.2;

/// The search for the number of trials at once that trains fastest on one GPU.
/// It starts at one, and doubles while the GPU's throughput (training examples
/// per second, all its trials together, measured over at least [`WINDOW`] and
/// [`WINDOW_TRIALS_PER_LANE`] finished trials per lane, or [`WINDOW_MAX`]) grows
/// by [`GAIN`] or more; then it keeps the fewest at once within [`GAIN`] of the best
/// for the rest of the run. Never more than the memory allows (`limit`). A
/// measurement starts once as many trials as are tried at once have started
/// since the number changed (each new lane open and training), and never with
/// the GPU's first trial, which also warms it up.
#[derive(Debug)]
pub struct Packing {
    state: Mutex<State>,
    /// What the throughput counts, per second ("samples/s", "tokens/s").
    unit: &'static str,
}

#[derive(Debug)]
struct State {
    /// Trials at once now.
    trying: usize,
    /// Trials started on the GPU when `trying` was set.
    set_at: usize,
    /// The measurement of `trying`, once under way: since when, and the
    /// examples trained and trials finished by then.
    window: Option<(Instant, u64, usize)>,
    /// Measured so far: trials at once and examples per second.
    rates: Vec<(usize, f64)>,
    /// The search is over.
    settled: bool,
}

/// Where one GPU's training stands, for [`Packing::trials`].
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Now.
    pub now: Instant,
    /// Training examples (rows, or tokens) trained on the GPU so far, all trials.
    pub trained: u64,
    /// Trials started on it so far.
    pub started: usize,
    /// Trials finished on it so far.
    pub finished: usize,
}

impl Packing {
    /// A search counting throughput in `unit` ("samples/s").
    pub fn new(unit: &'static str) -> Packing {
        let state = State { trying: 1, set_at: 0, window: None, rates: Vec::new(), settled: false };
        Packing { state: Mutex::new(state), unit }
    }

    /// Trials at once from now on, at most `limit` (what fits in memory, at least
    /// 1), and why, in words for the user; advances the search with `progress`.
    pub fn trials(&self, progress: Progress, limit: usize) -> (usize, String) {
        let limit = limit.max(1);
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if !state.settled {
            self.advance(&mut state, progress, limit);
        }
        let trials = state.trying.min(limit);
        let measured = self.measured(&state.rates);
        let why = if state.settled && trials < state.trying {
            format!("fit its memory; {measured}")
        } else if state.settled {
            format!("trained the most: {measured}")
        } else if state.rates.is_empty() {
            format!("measuring the throughput of {trials} at once")
        } else {
            format!("{measured}; measuring {trials} at once")
        };
        (trials, why)
    }

    fn advance(&self, state: &mut State, progress: Progress, limit: usize) {
        // The first trial also opens the GPU, and is not measured.
        if progress.finished == 0 {
            return;
        }
        let Some((since, trained, finished)) = state.window else {
            if progress.started >= state.set_at + state.trying.min(limit) {
                state.window = Some((progress.now, progress.trained, progress.finished));
            }
            return;
        };
        let elapsed = progress.now.saturating_duration_since(since);
        // What ran: the memory may allow fewer than were tried.
        let ran = state.trying.min(limit);
        let trials = (WINDOW_TRIALS_PER_LANE * ran).max(WINDOW_TRIALS_MIN);
        let enough = progress.finished.saturating_sub(finished) >= trials;
        if elapsed < WINDOW || !(enough || elapsed >= WINDOW_MAX) {
            return;
        }
        let rate = progress.trained.saturating_sub(trained) as f64 / elapsed.as_secs_f64();
        let best = state.rates.iter().map(|(_, rate)| *rate).fold(0.0, f64::max);
        state.rates.push((ran, rate));
        state.window = None;
        let more = (ran * 2).min(limit);
        if (best == 0.0 || rate >= GAIN * best) && more > ran {
            state.trying = more;
            state.set_at = progress.started;
        } else {
            // The fewest trials at once within GAIN of the best throughput.
            let best = best.max(rate);
            state.trying = state
                .rates
                .iter()
                .filter(|(_, rate)| *rate * GAIN > best)
                .map(|(trials, _)| *trials)
                .min()
                .unwrap_or(1);
            state.settled = true;
        }
    }

    /// "1 at once 12,345 samples/s, 2 at once 20,110 samples/s".
    fn measured(&self, rates: &[(usize, f64)]) -> String {
        let each: Vec<String> = rates
            .iter()
            .map(|(trials, rate)| format!("{trials} at once {} {}", thousands(*rate), self.unit))
            .collect();
        each.join(", ")
    }
}

/// `rate` rounded, with thousands separated by commas.
fn thousands(rate: f64) -> String {
    let digits = format!("{:.0}", rate.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the search on a GPU where `k` trials at once train `rate(k)` examples
    /// per second, each trial 0.5 s long, looking every 0.1 s; returns what it
    /// settles on.
    fn settle(rate: impl Fn(usize) -> f64, limit: usize) -> (usize, String) {
        let packing = Packing::new("samples/s");
        let start = Instant::now();
        let (mut trained, mut started) = (0.0, 0.0);
        let mut last = (1, String::new());
        for tick in 0..2_000 {
            let now = start + Duration::from_millis(100 * tick);
            let running = last.0;
            let finished = (started as usize).saturating_sub(running);
            let progress =
                Progress { now, trained: trained as u64, started: started as usize, finished };
            last = packing.trials(progress, limit);
            trained += rate(running) * 0.1;
            started += running as f64 / 5.0;
            if packing.state.lock().unwrap().settled {
                return last;
            }
        }
        panic!("the search did not settle: {last:?}");
    }

    #[test]
    fn the_search_keeps_the_fewest_trials_at_once_that_train_near_the_fastest() {
        // (throughput at 1, 2, 4, 8 at once; memory limit) -> trials at once.
        let table: [([f64; 4], usize, usize); 6] = [
            // Launch-bound small models: every doubling pays.
            ([100.0, 190.0, 350.0, 600.0], 8, 8),
            // A model that keeps the GPU busy alone.
            ([100.0, 104.0, 100.0, 90.0], 8, 1),
            // Two at once pay, four barely more.
            ([100.0, 170.0, 190.0, 190.0], 8, 2),
            // Slower with more.
            ([100.0, 80.0, 60.0, 40.0], 8, 1),
            // Memory allows three: tried after two.
            ([100.0, 190.0, 270.0, 270.0], 3, 3),
            // Memory allows one.
            ([100.0, 190.0, 350.0, 600.0], 1, 1),
        ];
        for (rates, limit, expected) in table {
            let rate = |k: usize| match k {
                1 => rates[0],
                2 => rates[1],
                3 => rates[2] * 0.9,
                4 => rates[2],
                _ => rates[3],
            };
            let (trials, why) = settle(rate, limit);
            assert_eq!(trials, expected, "{rates:?}, limit {limit}: {why}");
            assert!(why.contains("1 at once 100 samples/s") || limit == 1, "{why}");
        }
    }

    #[test]
    fn a_measurement_spans_enough_time_and_trials_and_skips_warming_up() {
        let packing = Packing::new("samples/s");
        let start = Instant::now();
        let at = |secs: f64, trained: u64, started: usize, finished: usize| Progress {
            now: start + Duration::from_secs_f64(secs),
            trained,
            started,
            finished,
        };
        let window = || packing.state.lock().unwrap().window;
        // Before a trial finished, nothing is measured.
        assert_eq!(packing.trials(at(10.0, 5_000, 1, 0), 8).0, 1);
        assert_eq!(window(), None);
        // The window starts at the first look after it.
        assert_eq!(packing.trials(at(10.0, 5_000, 2, 1), 8).0, 1);
        assert_eq!(window(), Some((start + Duration::from_secs(10), 5_000, 1)));
        // Four trials finished but under a second: not over.
        assert_eq!(packing.trials(at(10.9, 7_000, 6, 5), 8).0, 1);
        // Four trials in 3 s: 6,000 examples, and two at once are tried next.
        let (trials, why) = packing.trials(at(13.0, 11_000, 6, 5), 8);
        assert_eq!(trials, 2);
        assert_eq!(why, "1 at once 2,000 samples/s; measuring 2 at once");
        // Their window starts only once two more trials have started.
        assert_eq!(packing.trials(at(14.0, 13_000, 7, 6), 8).0, 2);
        assert_eq!(window(), None);
        assert_eq!(packing.trials(at(14.5, 14_000, 8, 6), 8).0, 2);
        assert_eq!(window(), Some((start + Duration::from_secs_f64(14.5), 14_000, 6)));
        // Long trials: 30 s without the four finished trials ends it too.
        assert_eq!(packing.trials(at(44.0, 20_000, 8, 7), 8).0, 2);
        assert_eq!(packing.trials(at(44.5, 20_000, 8, 7), 8).0, 1);
        assert!(packing.state.lock().unwrap().settled);
    }

    #[test]
    fn thousands_are_separated() {
        assert_eq!(thousands(0.4), "0");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(1_234.0), "1,234");
        assert_eq!(thousands(1_234_567.8), "1,234,568");
    }
}
