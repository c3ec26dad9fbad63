//! Prints the order hpo splits a table of N rows in (`hpo_train::data::split_order`)
//! as JSON: `{"train": [...], "val": [...], "test": [...]}`, each a list of row
//! indices of the file. For twins in other tools that must train on hpo's rows:
//! `cargo run --release -p hpo-train --example split_order -- 1797`.

// An example program: its output is the point.
#[allow(clippy::print_stdout, clippy::print_stderr)]
fn main() {
    let n: usize = match std::env::args().nth(1).map(|arg| arg.parse()) {
        Some(Ok(n)) => n,
        _ => {
            eprintln!("usage: split_order N (the number of rows of the table)");
            std::process::exit(2);
        }
    };
    let order = hpo_train::data::split_order(n);
    let (n_train, n_val) = hpo_train::data::split_sizes(n);
    let list = |part: &[usize]| part.iter().map(usize::to_string).collect::<Vec<_>>().join(",");
    println!(
        "{{\"train\": [{}], \"val\": [{}], \"test\": [{}]}}",
        list(&order[..n_train]),
        list(&order[n_train..n_train + n_val]),
        list(&order[n_train + n_val..])
    );
}
