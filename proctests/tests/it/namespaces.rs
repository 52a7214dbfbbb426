//! Test namespaces under SIGKILL: a killed test process never leaves a directory that no
//! reaper can take.

use std::process::{Command, Stdio};
use std::time::Duration;

use tabula::{Catalog, Recursive};
use tabula_testkit::{reap_orphans, Lease, LEASE_TABLE};

const CHILD: &str = env!("CARGO_BIN_EXE_proctest-child");

#[test]
fn sixty_killed_churners_leave_no_directory_without_a_lease() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("churn.db");
    Catalog::open(&db).unwrap();
    for kill in 0..60u64 {
        let mut child =
            Command::new(CHILD).args(["churn", db.to_str().unwrap()]).stderr(Stdio::null()).spawn().unwrap();
        // Kill at a different moment each time: 20 to 60 ms into the churn.
        std::thread::sleep(Duration::from_millis(20 + (kill * 7) % 41));
        child.kill().unwrap();
        child.wait().unwrap();
    }
    let cat = Catalog::open(&db).unwrap();
    let leased: Vec<String> = cat
        .get_table(LEASE_TABLE)
        .unwrap()
        .select_all()
        .collect_as::<Lease>()
        .unwrap()
        .into_iter()
        .map(|l| l.path)
        .collect();
    let dirs: Vec<String> = cat
        .list_dirs("", Recursive::No)
        .unwrap()
        .into_iter()
        .map(|d| d.to_string())
        .filter(|d| d != "tabula_testkit")
        .collect();
    let orphans: Vec<&String> = dirs.iter().filter(|d| !leased.contains(d)).collect();
    assert!(orphans.is_empty(), "directories without a lease: {orphans:?}");
    reap_orphans(&cat).unwrap();
    let left: Vec<_> =
        cat.list_dirs("", Recursive::No).unwrap().into_iter().filter(|d| d.to_string() != "tabula_testkit").collect();
    assert!(left.is_empty(), "the reaper took every namespace of the killed processes: {left:?}");
    assert_eq!(cat.get_table(LEASE_TABLE).unwrap().count().unwrap(), 0);
}

#[test]
fn namespaces_of_killed_processes_are_reaped() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("orphan.db");
    let cat = Catalog::open(&db).unwrap();
    let mut child = Command::new(CHILD)
        .args(["hold", db.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the child holds its namespace, then kill it (SIGKILL: no destructor runs).
    let mut ready = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut ready).unwrap();
    assert_eq!(ready.trim(), "READY", "the child never took its namespace");
    child.kill().unwrap();
    child.wait().unwrap();
    let leases: Vec<Lease> = cat.get_table(LEASE_TABLE).unwrap().select_all().collect_as().unwrap();
    assert_eq!(leases.len(), 1);
    assert_eq!(leases[0].pid, i64::from(child.id()));
    assert!(leases[0].path.starts_with("test_orphan_"), "{}", leases[0].path);
    let reaped = reap_orphans(&cat).unwrap();
    assert_eq!(reaped, [leases[0].path.clone()]);
    let left: Vec<_> =
        cat.list_dirs("", Recursive::No).unwrap().into_iter().filter(|d| d.to_string() != "tabula_testkit").collect();
    assert!(left.is_empty(), "the orphan and its tables are gone: {left:?}");
    assert_eq!(cat.get_table(LEASE_TABLE).unwrap().count().unwrap(), 0);
}
