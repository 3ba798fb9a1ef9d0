//! The `bugsmith` binary: everything lives in the library.

fn main() -> std::process::ExitCode {
    // A closed pipe (`bugsmith try … | head`) ends the process quietly, as for other tools,
    // instead of a panic on the next write.
    // SAFETY: setting a signal's disposition to the default at start, before any thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    bugsmith::run(std::env::args_os())
}
