//! Helpers shared by the integration tests: run the binary, read its JSON, find a Docker daemon.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn manifest() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs the binary with the repository's strategies, a cache and no progress bar.
pub fn bugsmith(args: &[&str], cache: &Path) -> Output {
    bugsmith_in(args, cache, None)
}

/// Like [`bugsmith`], in a working directory.
pub fn bugsmith_in(args: &[&str], cache: &Path, dir: Option<&Path>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_bugsmith"));
    command
        .args(args)
        .env("BUGSMITH_STRATEGIES", manifest().join("strategies"))
        .env("BUGSMITH_CACHE", cache)
        .env("BUGSMITH_NO_PROGRESS", "1");
    if let Some(dir) = dir {
        command.current_dir(dir);
    }
    command.output().expect("run bugsmith")
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).to_string()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).to_string()
}

/// The JSON summary of a successful run.
pub fn json(output: &Output) -> serde_json::Value {
    assert!(output.status.success(), "bugsmith failed:\n{}\n{}", stderr(output), stdout(output));
    serde_json::from_slice(&output.stdout).expect("JSON summary")
}

/// Sdists and environments are made once per target directory.
pub fn shared_cache() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bugsmith-cache")
}

/// Whether Docker tests can run: a daemon answers and the local base image exists. Without them
/// the test is skipped, unless `BUGSMITH_REQUIRE_DOCKER` is set (CI), where it fails.
pub fn docker_ready() -> bool {
    let info = Command::new("docker").args(["image", "inspect", "bugsmith-base:bookworm"]).output();
    let ready = info.is_ok_and(|o| o.status.success());
    if !ready {
        assert!(
            std::env::var_os("BUGSMITH_REQUIRE_DOCKER").is_none(),
            "BUGSMITH_REQUIRE_DOCKER is set but no Docker daemon with the image bugsmith-base:bookworm answers (run .ci/base-image.sh)"
        );
        eprintln!("skipped: docker unavailable");
    }
    ready
}
