//! Migrations applied by several processes at once, and by a process killed mid-step.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tabula::{Catalog, Path};

const CHILD: &str = env!("CARGO_BIN_EXE_proctest-child");

fn rounds() -> usize {
    std::env::var("TABULA_PROC_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(10)
}

/// `n` processes start `apply` on one new catalog at the same moment; returns the catalog.
fn race(n: usize, dir: &std::path::Path, round: usize) -> Catalog {
    let db = dir.join(format!("race_{n}_{round}.db"));
    Catalog::open(&db).unwrap(); // created once, so the children race on applying only
    let start = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_micros() + 300_000;
    let children: Vec<_> = (0..n)
        .map(|_| {
            Command::new(CHILD)
                .args(["apply", db.to_str().unwrap(), "app", &start.to_string()])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut applied = Vec::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "a child failed: {}", String::from_utf8_lossy(&out.stderr));
        applied.extend(String::from_utf8(out.stdout).unwrap().lines().map(str::to_string));
    }
    applied.sort();
    assert_eq!(applied, ["0001_settings", "0002_seed"], "round {round} with {n} processes");
    Catalog::open(&db).unwrap()
}

#[test]
fn processes_starting_together_apply_every_step_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    for n in [2, 8] {
        for round in 0..rounds() {
            let cat = race(n, dir.path(), round);
            assert_eq!(cat.get_table("app/settings").unwrap().count().unwrap(), 1, "the seed row is there once");
            assert_eq!(cat.get_table("app/runs").unwrap().count().unwrap(), 1, "the seed step ran once");
            assert!(tabula_proctests::migrations::app()
                .pending(&cat, &Path::parse("app").unwrap())
                .unwrap()
                .is_empty());
        }
    }
}

#[test]
fn a_step_killed_halfway_is_undone_and_applied_once_by_the_next_apply() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("killed.db");
    let ready = dir.path().join("ready");
    let mut child = Command::new(CHILD)
        .args(["hang", db.to_str().unwrap(), "app", ready.to_str().unwrap()])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !ready.exists() {
        assert!(started.elapsed() < Duration::from_secs(30), "the child never reached the middle of its step");
        assert!(child.try_wait().unwrap().is_none(), "the child ended early");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL: no destructor, no unwinding
    child.wait().unwrap();

    let cat = Catalog::open(&db).unwrap();
    let ns = Path::parse("app").unwrap();
    assert_eq!(cat.get_table("app/settings").unwrap().count().unwrap(), 1, "the partial step's insert is there");
    let status = tabula_proctests::migrations::app().status(&cat, &ns).unwrap();
    assert_eq!(status.pending, ["0002_seed"]);
    assert!(status.applying.as_deref().is_some_and(|a| a.contains("running step '0002_seed'")), "{status}");

    let report = tabula_proctests::migrations::app().apply(&cat, &ns).unwrap();
    let recovered = report.recovered.as_ref().expect("the partial step is found");
    assert_eq!(recovered.step, "0002_seed");
    assert_eq!(recovered.undone, ["reverted settings to version 0"]);
    assert_eq!(report.ids(), ["0002_seed"]);
    assert_eq!(cat.get_table("app/settings").unwrap().count().unwrap(), 1, "applied once, not on top");
    assert_eq!(cat.get_table("app/runs").unwrap().count().unwrap(), 1);
    assert_eq!(tabula_proctests::migrations::app().status(&cat, &ns).unwrap().applying, None);
}
