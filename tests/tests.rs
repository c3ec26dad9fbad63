//! hpo's end-to-end tests: each drives the `hpo` binary in a temp dir, as a user
//! would. One test binary (as ripgrep does) keeps linking fast.

#[path = "../crates/cli/browser.rs"]
mod browser;
mod cli;
mod command;
mod crash;
mod dashboard;
mod export;
mod faults;
mod fuzz;
mod monitoring;
mod nightly;
mod optuna;
mod parallel;
mod postgres;
mod report;
mod serve;
mod tidy;
mod util;
