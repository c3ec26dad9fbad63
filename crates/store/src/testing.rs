//! A throwaway PostgreSQL server for tests: `scripts/pg-test-cluster.sh`, started
//! once per test process and stopped when the process exits (its standard input,
//! held here, closes), with a fresh database per test.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

/// The running test cluster.
pub struct PgCluster {
    /// `postgresql://postgres@127.0.0.1:PORT/postgres`.
    pub url: String,
    control: Mutex<(ChildStdin, BufReader<std::process::ChildStdout>)>,
}

static CLUSTER: OnceLock<PgCluster> = OnceLock::new();
static DATABASES: AtomicUsize = AtomicUsize::new(0);

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/pg-test-cluster.sh")
}

/// The test process's shared cluster, started on first use.
pub fn cluster() -> &'static PgCluster {
    CLUSTER.get_or_init(PgCluster::start)
}

impl PgCluster {
    /// A cluster of its own (for a test that restarts it), stopped when dropped.
    pub fn start() -> PgCluster {
        let mut child = Command::new(script())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start scripts/pg-test-cluster.sh");
        let stdin = child.stdin.take().expect("its stdin");
        let mut stdout = BufReader::new(child.stdout.take().expect("its stdout"));
        let mut url = String::new();
        stdout.read_line(&mut url).expect("read its URL");
        let url = url.trim().to_owned();
        assert!(url.starts_with("postgresql://"), "pg-test-cluster.sh failed: {url:?}");
        // The script runs until its stdin closes; it is not waited for.
        std::mem::forget(child);
        PgCluster { url, control: Mutex::new((stdin, stdout)) }
    }

    /// A new empty database on the cluster; its URL.
    pub fn new_database(&self) -> String {
        let name =
            format!("hpo_test_{}_{}", std::process::id(), DATABASES.fetch_add(1, Ordering::SeqCst));
        let mut client = postgres::Client::connect(&self.url, postgres::NoTls)
            .expect("connect to the test cluster");
        client.batch_execute(&format!("CREATE DATABASE {name}")).expect("create a test database");
        self.url_of(&name)
    }

    /// The URL of database `name` on this cluster.
    pub fn url_of(&self, name: &str) -> String {
        let base = self.url.rsplit_once('/').map_or(self.url.as_str(), |it| it.0);
        format!("{base}/{name}")
    }

    /// Stops the server (fast shutdown: sessions are cut) and starts it again.
    pub fn restart(&self) {
        let mut control = self.control.lock().unwrap_or_else(|it| it.into_inner());
        writeln!(control.0, "restart").expect("ask for a restart");
        let mut line = String::new();
        control.1.read_line(&mut line).expect("wait for the restart");
        assert_eq!(line.trim(), "restarted");
    }
}
