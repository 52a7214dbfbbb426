//! Applying migrations as production does: one applier at a time, each step all or nothing,
//! a status that reports drift. (Killed appliers and many processes: `proctests`.)

use std::sync::{Arc, Barrier};
use std::time::Duration;

use tabula::{row, Catalog, ColumnType, ErrorCode, LockOptions, Path, Recursive, Schema};
use tabula_testkit::{migration, Drift, Migration, Migrations, TestEnv};

/// Everything observable in a catalog: directories, tables, schemas, histories and rows.
fn state(cat: &Catalog) -> String {
    let mut out = String::new();
    for dir in cat.list_dirs("", Recursive::Yes).unwrap() {
        out.push_str(&format!("dir {dir}\n"));
    }
    for path in cat.list_tables("", Recursive::Yes).unwrap() {
        let t = cat.get_table(&path).unwrap();
        out.push_str(&t.describe().unwrap().to_string());
        for v in t.history().unwrap() {
            out.push_str(&format!("  v{} {}\n", v.version, v.detail));
        }
        for r in t.select_all().collect().unwrap() {
            out.push_str(&format!("  {r}\n"));
        }
    }
    out
}

fn settings() -> Migration {
    migration!("0001_settings", |ctx| {
        ctx.create_table("settings", Schema::new().required("key", ColumnType::String))?;
        Ok(())
    })
}

/// A step that is not idempotent on purpose: run twice, it inserts the seed row twice.
fn seed() -> Migration {
    migration!("0002_seed", |ctx| {
        ctx.table("settings")?.insert([row! {"key" => "default"}])?;
        Ok(())
    })
}

#[test]
fn a_failing_step_is_undone_whole_and_stays_pending() {
    let cat = Catalog::in_memory().unwrap();
    let ns = Path::parse("app").unwrap();
    Migrations::new([settings()]).apply(&cat, &ns).unwrap();
    let before = state(&cat);
    let broken = migration!("0002_half", |ctx| {
        ctx.table("settings")?.insert([row! {"key" => "half"}])?;
        ctx.create_table("audit", Schema::new().required("at", ColumnType::Int))?;
        ctx.catalog().create_dir(ctx.path("archive")?, tabula::IfExists::Error)?;
        ctx.table("missing")?; // fails after three changes
        Ok(())
    });
    let m = Migrations::new([settings(), broken]);
    let e = m.apply(&cat, &ns).unwrap_err();
    assert_eq!(e.code(), ErrorCode::NotFound);
    let msg = e.to_string();
    assert!(msg.contains("migration '0002_half'") && msg.contains("'app/missing'"), "{msg}");
    assert!(msg.contains("reverted settings to version 0"), "{msg}");
    assert!(msg.contains("dropped table audit") && msg.contains("dropped directory archive"), "{msg}");
    assert_eq!(state(&cat), before, "the failed step left changes behind");
    assert_eq!(m.pending(&cat, &ns).unwrap(), ["0002_half"]);
}

#[test]
fn a_panicking_step_is_undone_too() {
    let cat = Catalog::in_memory().unwrap();
    let ns = Path::parse("app").unwrap();
    Migrations::new([settings()]).apply(&cat, &ns).unwrap();
    let before = state(&cat);
    let m = Migrations::new([
        settings(),
        Migration::new("0002_panics", |ctx| {
            ctx.table("settings")?.insert([row! {"key" => "x"}])?;
            panic!("bug in the step");
        }),
    ]);
    let msg = m.apply(&cat, &ns).unwrap_err().to_string();
    assert!(msg.contains("panicked: bug in the step") && msg.contains("undone"), "{msg}");
    assert_eq!(state(&cat), before);
}

#[test]
fn threads_on_separate_handles_apply_each_step_once() {
    let env = TestEnv::new().unwrap();
    let file = env.catalog().file().unwrap();
    let ns = Path::parse("app").unwrap();
    let start = Arc::new(Barrier::new(6));
    let handles: Vec<_> = (0..6)
        .map(|_| {
            let (file, ns, start) = (file.clone(), ns.clone(), start.clone());
            std::thread::spawn(move || {
                let cat = Catalog::open(&file).unwrap();
                start.wait();
                Migrations::new([settings(), seed()]).apply(&cat, &ns).unwrap().steps.len()
            })
        })
        .collect();
    let runs: Vec<usize> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(runs.iter().sum::<usize>(), 2, "every step runs exactly once: {runs:?}");
    assert_eq!(env.catalog().get_table("app/settings").unwrap().count().unwrap(), 1);
}

#[test]
fn a_second_applier_waits_and_then_names_the_holder() {
    let env = TestEnv::new().unwrap();
    let cat = env.catalog();
    let ns = Path::parse("app").unwrap();
    let held = cat.lock("tabula_testkit/migrations:app", LockOptions::default()).unwrap();
    let impatient = Migrations::new([settings()])
        .lock_options(LockOptions { wait: Duration::from_millis(200), ..LockOptions::default() });
    let e = impatient.apply(&Catalog::open(cat.file().unwrap()).unwrap(), &ns).unwrap_err();
    assert_eq!(e.code(), ErrorCode::Busy);
    assert!(e.to_string().contains(&format!("process {}", std::process::id())), "{e}");
    let status = impatient.status(cat, &ns).unwrap();
    assert!(status.applying.as_deref().is_some_and(|w| w.contains("process")), "{status}");
    drop(held);
    assert_eq!(impatient.apply(cat, &ns).unwrap().ids(), ["0001_settings"]);
    assert_eq!(impatient.status(cat, &ns).unwrap().applying, None, "the lock is released after apply");
}

#[test]
fn status_reports_pending_steps_and_drift() {
    let cat = Catalog::in_memory().unwrap();
    let ns = Path::parse("app").unwrap();
    let old = Migrations::new([settings(), seed(), migration!("0003_gone", |_ctx| Ok(()))]);
    old.apply(&cat, &ns).unwrap();
    let edited_seed = migration!("0002_seed", |ctx| {
        ctx.table("settings")?.insert([row! {"key" => "changed"}])?;
        Ok(())
    });
    let new = Migrations::new([settings(), edited_seed, migration!("0004_new", |_ctx| Ok(()))]);
    let status = new.status(&cat, &ns).unwrap();
    assert_eq!(status.pending, ["0004_new"]);
    assert_eq!(new.plan(&cat, &ns).unwrap(), ["0004_new"]);
    assert!(
        matches!(&status.drift[..], [Drift::Edited { id, .. }, Drift::Unknown { id: gone }]
        if id == "0002_seed" && gone == "0003_gone"),
        "{status}"
    );
    assert_eq!(status.applied[0].pid, Some(i64::from(std::process::id())));
    let text = status.to_string();
    assert!(text.contains("DRIFT    step '0002_seed' was edited"), "{text}");
    assert!(text.contains("pending  0004_new"), "{text}");
    // The same code as applied has no drift; reformatting a step does not count as an edit.
    let reformatted = migration!("0001_settings", |ctx| {
        ctx.create_table("settings", Schema::new().required("key", ColumnType::String))?;
        Ok(())
    });
    assert_eq!(reformatted.fingerprint(), settings().fingerprint());
    assert!(old.status(&cat, &ns).unwrap().drift.is_empty());
}

#[test]
fn nothing_pending_takes_no_lock_and_writes_nothing() {
    let env = TestEnv::new().unwrap();
    let cat = env.catalog();
    let ns = Path::parse("app").unwrap();
    let m = Migrations::new([settings()]);
    m.apply(cat, &ns).unwrap();
    let _held = cat.lock("tabula_testkit/migrations:app", LockOptions::default()).unwrap();
    let before = state(cat);
    // Someone holds the lock, yet an apply with nothing to do returns at once.
    assert!(m.apply(&Catalog::open(cat.file().unwrap()).unwrap(), &ns).unwrap().steps.is_empty());
    assert_eq!(state(cat), before);
}

#[test]
fn a_step_that_cannot_be_undone_keeps_its_note_and_the_lock() {
    let cat = Catalog::in_memory().unwrap();
    let ns = Path::parse("app").unwrap();
    Migrations::new([settings()]).apply(&cat, &ns).unwrap();
    let m = Migrations::new([
        settings(),
        Migration::new("0002_drop_then_fail", |ctx| {
            ctx.catalog().drop_table(ctx.path("settings")?, tabula::Force::Yes)?;
            Err(tabula::Error::new(ErrorCode::InvalidArgument, "failed after the drop"))
        }),
    ])
    .lock_options(LockOptions { wait: Duration::from_millis(100), ..LockOptions::default() });
    let e = m.apply(&cat, &ns).unwrap_err();
    assert!(e.to_string().contains("could not be fully undone") && e.to_string().contains("cannot be restored"), "{e}");
    // The next applier is not let loose on the half-done step: the lock stays, with its note.
    let status = m.status(&cat, &ns).unwrap();
    assert!(status.applying.as_deref().is_some_and(|a| a.contains("running step '0002_drop_then_fail'")), "{status}");
    assert_eq!(m.apply(&cat, &ns).unwrap_err().code(), ErrorCode::Busy);
}
