//! Processes that hold something (a catalog lock, a test namespace's lease): who they are and
//! whether they still run.
//!
//! A holder is recorded as its pid, its start time and its host. On the holder's own host the
//! process table says whether it runs: Linux, macOS, Windows, FreeBSD and the other platforms
//! `sysinfo` supports. A pid that now belongs to another process (its start time differs) does
//! not count as the holder. From another host, or where the process table cannot be read,
//! nothing can be told ([`Holder::is_gone`] is `None`) and only a lease's expiry counts.

use std::sync::OnceLock;

use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};

/// Start times below this (seconds since the epoch, 2001-09-09) were written by earlier
/// versions, which counted clock ticks since boot: they cannot be compared, so such a holder
/// is neither alive nor gone as far as this module can tell.
const OLDEST_START: i64 = 1_000_000_000;

/// A process that holds something.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// Its process id.
    pub pid: i64,
    /// When it started, in seconds since the epoch (0 where unknown).
    pub started: i64,
    /// Its host's name (empty where unknown).
    pub host: String,
}

impl Holder {
    /// This process.
    pub fn current() -> Holder {
        static CURRENT: OnceLock<Holder> = OnceLock::new();
        CURRENT
            .get_or_init(|| {
                let pid = i64::from(std::process::id());
                Holder { pid, started: start_time(pid).unwrap_or(0), host: host_name() }
            })
            .clone()
    }

    /// `Some(true)` when the holder certainly runs no more (on this host: no process with its
    /// pid, or one that started at another time), `Some(false)` when it runs, `None` when this
    /// process cannot tell (another host, a platform without a process table, or a start time
    /// in an older unit).
    pub fn is_gone(&self) -> Option<bool> {
        if !sysinfo::IS_SUPPORTED_SYSTEM || self.host.is_empty() || self.host != host_name() {
            return None;
        }
        match start_time(self.pid) {
            None => Some(true),
            Some(_) if self.started == 0 => Some(false),
            Some(_) if self.started < OLDEST_START => None,
            Some(started) => Some(started != self.started),
        }
    }
}

/// This host's name (empty where it cannot be read).
pub fn host_name() -> String {
    static HOST: OnceLock<String> = OnceLock::new();
    HOST.get_or_init(|| System::host_name().map(|h| h.trim().to_string()).unwrap_or_default()).clone()
}

/// When process `pid` of this host started, in seconds since the epoch; `None` when there is
/// no such process.
fn start_time(pid: i64) -> Option<i64> {
    let pid = Pid::from_u32(u32::try_from(pid).ok()?);
    let mut system = System::new();
    system.refresh_processes_specifics(ProcessesToUpdate::Some(&[pid]), true, ProcessRefreshKind::nothing());
    system.process(pid).map(|p| i64::try_from(p.start_time()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_runs_and_a_reused_pid_or_a_dead_one_does_not() {
        let me = Holder::current();
        assert!(me.started > OLDEST_START, "the start time is read on this platform: {me:?}");
        assert!(!me.host.is_empty());
        assert_eq!(me.is_gone(), Some(false));
        assert_eq!(Holder { started: me.started + 1, ..me.clone() }.is_gone(), Some(true), "same pid, other start");
        assert_eq!(Holder { pid: i64::from(i32::MAX), ..me.clone() }.is_gone(), Some(true), "no such process");
        assert_eq!(Holder { started: 0, ..me.clone() }.is_gone(), Some(false), "start unknown: the pid counts");
        assert_eq!(Holder { started: 12_345, ..me.clone() }.is_gone(), None, "an older unit cannot be compared");
        assert_eq!(Holder { host: "elsewhere".into(), ..me.clone() }.is_gone(), None, "another host cannot be told");
    }

    #[test]
    fn a_child_that_exited_is_gone() {
        let Ok(mut child) = std::process::Command::new(std::env::current_exe().unwrap_or_default())
            .arg("--list")
            .stdout(std::process::Stdio::null())
            .spawn()
        else {
            panic!("could not start a child process");
        };
        let pid = i64::from(child.id());
        let alive = Holder { pid, started: start_time(pid).unwrap_or(0), host: host_name() };
        assert!(child.wait().is_ok());
        assert_eq!(alive.is_gone(), Some(true), "{alive:?}");
    }
}
