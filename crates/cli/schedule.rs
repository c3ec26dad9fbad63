//! `hpo serve --schedule FILE`: the service runs nightly studies at set times.
//!
//! The schedule file names, per nightly study, its study file, the time of day and
//! time zone to start it, and an optional window after which it starts no new
//! trial (docs/nightly.md). A thread of `hpo serve` wakes every second; when a
//! study's time has come on a day it has not run yet, it runs that day's night as
//! `hpo nightly STUDY --date DAY --json` (a process of its own, so a night that
//! crashes leaves the service up) and waits for it: nights run one after another.
//! Each night's exit code and end time go to `/metrics`
//! (`hpo_nightly_scheduled_*`), beside the verdicts the nights store.
//!
//! A night whose time passed less than [`CATCH_UP`] before the service started is
//! still run: a restart around the night's time does not miss it. `--clock-start`
//! (hidden) sets the service's clock to a given time at start, for tests and
//! rehearsals of a schedule.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use hpo_server::metrics::ScheduledNights;
use serde::Deserialize;

/// How long after a night's time the service may start and still run it.
const CATCH_UP: jiff::SignedDuration = jiff::SignedDuration::from_hours(1);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSchedule {
    night: Vec<RawNight>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNight {
    study: String,
    at: String,
    time_zone: Option<String>,
    window: Option<String>,
}

/// One scheduled nightly study.
#[derive(Debug, Clone)]
pub struct ScheduledNight {
    /// The study file (relative paths resolved against the schedule file's folder).
    pub study: PathBuf,
    /// The study file's `[study] name`.
    pub name: String,
    /// When in the day the night starts.
    pub at: jiff::civil::Time,
    /// In which time zone.
    pub time_zone: jiff::tz::TimeZone,
    /// No new trial after this long, when set.
    pub window: Option<Duration>,
}

/// The schedule file, checked: every study file readable and valid, every time and
/// zone known, no study twice.
pub fn load(path: &Path) -> Result<Vec<ScheduledNight>> {
    let shown = path.display();
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the schedule file {shown}"))?;
    let raw: RawSchedule = toml::from_str(&text).map_err(|err| {
        crate::usage(format!(
            "{shown}: {}; a schedule is `[[night]]` tables with `study`, `at` (\"02:00\"), and optionally `time_zone` (\"Europe/Berlin\") and `window` (\"4h\")",
            err.message()
        ))
    })?;
    let base = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut nights: Vec<ScheduledNight> = Vec::new();
    for (idx, night) in raw.night.into_iter().enumerate() {
        let bad = |what: String| crate::usage(format!("{shown}: night {}: {what}", idx + 1));
        let study = base.join(&night.study);
        let spec = crate::read_study_file(&study)
            .map_err(|err| bad(format!("study {}: {err:#}", night.study)))?;
        let at = night.at.parse::<jiff::civil::Time>().map_err(|_| {
            bad(format!(
                "`at = \"{}\"` is not a time of day; write HH:MM, e.g. \"02:00\"",
                night.at
            ))
        })?;
        let time_zone = match &night.time_zone {
            Some(name) => jiff::tz::TimeZone::get(name).map_err(|_| {
                bad(format!("`time_zone = \"{name}\"` is not a time zone; write an IANA name, e.g. \"Europe/Berlin\" or \"UTC\""))
            })?,
            None => jiff::tz::TimeZone::system(),
        };
        let window = night
            .window
            .as_deref()
            .map(|text| {
                hpo_core::spec::parse_duration(text).ok_or_else(|| {
                    bad(format!(
                        "`window = \"{text}\"` is not a duration; write e.g. \"4h\" or \"90m\""
                    ))
                })
            })
            .transpose()?;
        if nights.iter().any(|n| n.name == spec.name) {
            return Err(bad(format!("study `{}` is scheduled twice", spec.name)));
        }
        nights.push(ScheduledNight { study, name: spec.name, at, time_zone, window });
    }
    if nights.is_empty() {
        return Err(crate::usage(format!("{shown} schedules no night; add a `[[night]]` table")));
    }
    Ok(nights)
}

/// The service's clock: the system's, shifted so that it read `start` when the
/// service started (`--clock-start`), else the system's as it is.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    offset: jiff::SignedDuration,
}

impl Clock {
    /// A clock that reads `start` now, or the system clock.
    pub fn starting_at(start: Option<jiff::Timestamp>) -> Clock {
        let offset = start.map_or(jiff::SignedDuration::ZERO, |start| {
            start.duration_since(jiff::Timestamp::now())
        });
        Clock { offset }
    }

    /// The time now, by this clock.
    pub fn now(&self) -> jiff::Timestamp {
        jiff::Timestamp::now().checked_add(self.offset).unwrap_or_else(|_| jiff::Timestamp::now())
    }
}

/// `--clock-start`: an RFC 3339 time, e.g. `2026-12-06T01:59:55Z`.
pub fn parse_clock_start(text: &str) -> std::result::Result<jiff::Timestamp, String> {
    text.parse().map_err(|_| {
        format!("`{text}` is not a time; write it as RFC 3339, e.g. 2026-12-06T01:59:55Z")
    })
}

/// Starts the thread that runs `nights` on `db` by `clock`, writing each night's
/// outcome into `scheduled`.
pub fn start(
    nights: Vec<ScheduledNight>,
    clock: Clock,
    db: PathBuf,
    scheduled: ScheduledNights,
) -> Result<()> {
    let exe = std::env::current_exe().context("cannot find the hpo binary to run nights")?;
    for night in &nights {
        tracing::info!(
            study = night.name,
            at = %night.at,
            time_zone = night.time_zone.iana_name().unwrap_or("the system's"),
            "scheduled nightly"
        );
    }
    std::thread::Builder::new()
        .name("schedule".into())
        .spawn(move || {
            let started = clock.now();
            let mut ran: BTreeSet<(usize, jiff::civil::Date)> = BTreeSet::new();
            loop {
                for (idx, night) in nights.iter().enumerate() {
                    let now = clock.now();
                    let date = now.to_zoned(night.time_zone.clone()).date();
                    let Ok(due) = date.to_datetime(night.at).to_zoned(night.time_zone.clone())
                    else {
                        continue;
                    };
                    let due = due.timestamp();
                    let missed = started.checked_sub(CATCH_UP).is_ok_and(|earliest| due < earliest);
                    if now < due || missed || !ran.insert((idx, date)) {
                        continue;
                    }
                    let code = run_night(&exe, night, &date.to_string(), &db);
                    let ended = clock.now().as_millisecond() as f64 / 1e3;
                    scheduled
                        .lock()
                        .unwrap_or_else(|it| it.into_inner())
                        .insert(night.name.clone(), (code, ended));
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        })
        .context("cannot start the scheduler's thread")?;
    Ok(())
}

/// Runs `hpo nightly` for `night` on `date` and waits; its exit code (3 when it
/// could not run or was killed).
fn run_night(exe: &Path, night: &ScheduledNight, date: &str, db: &Path) -> i32 {
    let mut command = std::process::Command::new(exe);
    command.arg("nightly").arg(&night.study).arg("--db").arg(db);
    command.args(["--date", date, "--json"]);
    if let Some(window) = night.window {
        command.args(["--timeout", &format!("{}s", window.as_secs().max(1))]);
    }
    tracing::info!(study = night.name, date, "night starts");
    match command.output() {
        Ok(out) => {
            let code = out.status.code().unwrap_or(3);
            let verdict = serde_json::from_slice::<serde_json::Value>(&out.stdout)
                .ok()
                .and_then(|json| json["verdict"].as_str().map(str::to_owned));
            match verdict {
                Some(verdict) => {
                    tracing::info!(study = night.name, date, code, verdict, "night ended")
                }
                None => {
                    let stderr = String::from_utf8_lossy(&out.stderr);
                    let last = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
                    tracing::warn!(study = night.name, date, code, error = last, "night failed");
                }
            }
            code
        }
        Err(err) => {
            tracing::warn!(study = night.name, date, "cannot start the night: {err}");
            3
        }
    }
}
