//! hpo's end-to-end tests: each drives the `hpo` binary in a temp dir, as a user
//! would. One test binary (as ripgrep does) keeps linking fast.

mod cli;
mod crash;
mod faults;
mod fuzz;
mod monitoring;
mod optuna;
mod parallel;
mod report;
mod serve;
mod util;
