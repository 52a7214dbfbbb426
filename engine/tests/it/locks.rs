//! Named advisory locks: one holder at a time across handles, released on drop, a note for
//! whoever comes next. (A holder killed mid-work: `proctests`.)

use std::time::Duration;

use tabula::{Catalog, ErrorCode, LockOptions, TryLock};

fn quick() -> LockOptions {
    LockOptions { wait: Duration::from_millis(100), ..LockOptions::default() }
}

#[test]
fn one_holder_at_a_time_across_handles() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (Catalog::open(dir.path().join("c.db")).unwrap(), Catalog::open(dir.path().join("c.db")).unwrap());
    let held = a.lock("jobs", quick()).unwrap();
    held.set_note(Some("step 3 of 5")).unwrap();
    let e = b.lock("jobs", quick()).unwrap_err();
    assert_eq!(e.code(), ErrorCode::Busy);
    assert!(e.to_string().contains(&format!("held by process {}", std::process::id())), "{e}");
    let holder = b.lock_holder("jobs").unwrap().unwrap();
    assert_eq!((holder.pid, holder.note.as_deref()), (i64::from(std::process::id()), Some("step 3 of 5")));
    assert!(matches!(b.try_lock("other", Duration::from_secs(1)).unwrap(), TryLock::Taken(_)), "names are separate");
    drop(held);
    assert_eq!(b.lock_holder("jobs").unwrap(), None, "dropping the lock releases it and its note");
    let again = b.lock("jobs", quick()).unwrap();
    assert_eq!(again.taken_over(), None, "a released lock is not a take-over");
    again.release().unwrap();
}

#[test]
fn a_read_only_catalog_cannot_lock() {
    let dir = tempfile::tempdir().unwrap();
    Catalog::open(dir.path().join("c.db")).unwrap();
    let ro = Catalog::open_read_only(dir.path().join("c.db")).unwrap();
    assert_eq!(ro.lock("jobs", quick()).unwrap_err().code(), ErrorCode::ReadOnly);
    assert_eq!(ro.lock_holder("jobs").unwrap(), None, "reading who holds a lock works read-only");
}
