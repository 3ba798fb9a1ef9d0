//! bugsmith turns a real Python repository into candidate (and, in later stages, validated)
//! software-engineering task instances. The Rust core parses Python (`ast`), applies and renders
//! edits (`patch`), and hosts Rhai scripts (`script`) that hold every bug strategy.
//!
//! `run` is the command-line entry point; the modules are usable as a library.

pub mod ast;
pub mod author;
pub mod backend;
pub mod budget;
pub mod bug_gen;
pub mod campaign;
pub mod candidates;
pub mod changes;
mod cli;
pub mod combine;
mod commands;
pub mod console;
pub mod context;
pub mod coverage;
pub mod eval;
pub mod export;
pub mod files;
pub mod gather;
pub mod git;
pub mod github;
pub mod grading;
pub mod ids;
pub mod interrupt;
pub mod issue_gen;
pub mod lm;
pub mod log;
pub mod mirror;
pub mod patch;
pub mod profile;
pub mod progress;
pub mod recipe;
pub mod records;
pub mod rng;
pub mod run;
pub mod script;
pub mod settings;
pub mod setup;
pub mod source;
pub mod stats;
pub mod testrun;
pub mod validate;

use std::process::ExitCode;

use clap::Parser;

/// Exit code: the command did what it was asked (problems with single files or scripts are
/// reported and skipped).
pub const EXIT_OK: u8 = 0;
/// Exit code: the command could not do its job (bad source, recipe, script set or output).
pub const EXIT_FAILURE: u8 = 1;
/// Exit code: bad command-line usage.
pub const EXIT_USAGE: u8 = 2;
/// Exit code of `campaign`: some sources failed, the rest are done.
pub const EXIT_SOME_FAILED: u8 = 3;

/// Parses the arguments and runs the command.
pub fn run(args: impl IntoIterator<Item = std::ffi::OsString>) -> ExitCode {
    let args = match cli::Args::try_parse_from(args) {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_USAGE } else { EXIT_OK });
        }
    };
    interrupt::install();
    log::init(args.global.verbose, args.global.quiet);
    console::set_quiet(args.global.quiet);
    let _ = ast::deep_stack_pool(args.global.jobs).build_global();
    match commands::dispatch(args) {
        Ok(code) => ExitCode::from(code),
        Err(message) => {
            interrupt::wait_if_interrupted();
            tracing::error!(target: log::RECORD, "{message}");
            eprintln!("error: {message}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}
