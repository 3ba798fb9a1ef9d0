//! Ctrl-C (and SIGTERM, SIGHUP): one handler for the process. Stages and backends register
//! clean-ups (remove containers, stop sandboxes, delete worker clones); on the signal each
//! runs once, what they did is printed, and the process exits with 130. A second signal while
//! cleaning up exits at once.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, Once};

type Cleanup = Box<dyn Fn() -> Option<String> + Send + Sync>;

static CLEANUPS: Mutex<Vec<(u64, Cleanup)>> = Mutex::new(Vec::new());
static NEXT: AtomicU64 = AtomicU64::new(0);
static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static INSTALL: Once = Once::new();

/// Installs the handler (idempotent). Called once at start by the command line.
pub fn install() {
    INSTALL.call_once(|| {
        let _ = ctrlc::set_handler(|| {
            if INTERRUPTED.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
            let cleanups = std::mem::take(&mut *CLEANUPS.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
            let done: Vec<String> = cleanups.iter().filter_map(|(_, cleanup)| cleanup()).collect();
            if done.is_empty() {
                eprintln!("interrupted");
            } else {
                eprintln!("interrupted: {}", done.join("; "));
            }
            std::process::exit(130);
        });
    });
}

/// Whether shutdown has begun (nothing new should start).
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// When shutdown has begun, waits for the handler to finish and end the process (a stage that
/// fails because it was interrupted must not exit first, with the wrong status and message).
pub fn wait_if_interrupted() {
    if interrupted() {
        std::thread::sleep(std::time::Duration::from_secs(120));
    }
}

/// A registered clean-up; dropping it unregisters it.
pub struct Registration(u64);

/// Registers `cleanup`, which returns what it did (`None`: nothing worth saying).
pub fn on_interrupt(cleanup: impl Fn() -> Option<String> + Send + Sync + 'static) -> Registration {
    let id = NEXT.fetch_add(1, Ordering::SeqCst);
    CLEANUPS.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push((id, Box::new(cleanup)));
    Registration(id)
}

impl Drop for Registration {
    fn drop(&mut self) {
        CLEANUPS.lock().unwrap_or_else(std::sync::PoisonError::into_inner).retain(|(id, _)| *id != self.0);
    }
}
