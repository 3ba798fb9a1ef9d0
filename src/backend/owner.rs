//! Who made a container or a worker folder: this host (machine id and pid namespace) and the
//! process (pid and start time). Only what is provably stale — made on this host by a process
//! that no longer runs — is ever removed without being asked; other runs' live workers are not.

/// The owner of a container or worker folder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    /// Machine id and pid-namespace id (`<machine>/<pid ns>`).
    pub host: String,
    /// The owning process.
    pub pid: u32,
    /// Its start time (clock ticks since boot, from `/proc/<pid>/stat`): tells a reused pid apart.
    pub started: u64,
}

impl Owner {
    /// This process.
    pub fn current() -> Owner {
        let pid = std::process::id();
        Owner { host: host_id(), pid, started: start_time(pid).unwrap_or(0) }
    }

    /// A process of this host, `None` when there is none with that pid.
    pub fn of(pid: u32) -> Option<Owner> {
        Some(Owner { host: host_id(), pid, started: start_time(pid)? })
    }

    /// The text form, `<host>|<pid>|<start>` (a label value or a file's content).
    pub fn to_text(&self) -> String {
        format!("{}|{}|{}", self.host, self.pid, self.started)
    }

    /// Reads [`Owner::to_text`]'s form.
    pub fn parse(text: &str) -> Option<Owner> {
        let mut parts = text.trim().rsplitn(3, '|');
        let started = parts.next()?.parse().ok()?;
        let pid = parts.next()?.parse().ok()?;
        let host = parts.next()?.to_string();
        Some(Owner { host, pid, started })
    }

    /// Made on this host by a process that is gone (or whose pid now belongs to another one).
    pub fn is_stale(&self) -> bool {
        self.host == host_id() && start_time(self.pid) != Some(self.started)
    }
}

/// This machine and pid namespace: `/etc/machine-id` (or D-Bus's copy, or the boot id when
/// neither exists) and the inode of `/proc/self/ns/pid`.
pub fn host_id() -> String {
    let machine = ["/etc/machine-id", "/var/lib/dbus/machine-id", "/proc/sys/kernel/random/boot_id"]
        .iter()
        .find_map(|path| std::fs::read_to_string(path).ok().map(|t| t.trim().to_string()).filter(|t| !t.is_empty()))
        .unwrap_or_else(|| "unknown".into());
    let namespace = std::fs::read_link("/proc/self/ns/pid").map(|p| p.display().to_string()).unwrap_or_default();
    let namespace = namespace.trim_start_matches("pid:[").trim_end_matches(']');
    format!("{machine}/{namespace}")
}

/// A process's start time in clock ticks since boot; `None` when it does not exist.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces and parentheses); start time is 22nd.
    let after_name = &stat[stat.rfind(')')? + 2..];
    after_name.split(' ').nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_live_and_a_dead_or_reused_pid_is_stale() {
        let me = Owner::current();
        assert!(me.started > 0);
        assert_eq!(Owner::parse(&me.to_text()), Some(me.clone()));
        assert!(!me.is_stale());
        assert!(Owner { started: me.started + 1, ..me.clone() }.is_stale(), "a reused pid is another process");
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(Owner { pid, ..me.clone() }.is_stale());
    }

    #[test]
    fn owners_on_other_hosts_are_never_stale() {
        let other = Owner { host: "another-machine/4026531836".into(), pid: 999_999, started: 1 };
        assert!(!other.is_stale());
        assert_eq!(Owner::parse("a|b|c"), None);
    }
}
