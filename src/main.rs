//! The `bugsmith` binary: everything lives in the library.

fn main() -> std::process::ExitCode {
    bugsmith::run(std::env::args_os())
}
