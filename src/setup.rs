//! The `env` stage and what precedes it: a profile detected from a source (`profile init`)
//! and the repository's environment built on a backend (`env build`).

use std::path::Path;
use std::time::Instant;

use crate::console;
use crate::context::{Context, Error, Outcome, io};
use crate::profile::Profile;
use crate::settings::{BackendKind, Containment};

/// `bugsmith profile init`: detects a profile for `source` and writes it to `output`.
pub fn profile_init_command(ctx: &Context, source: &str, output: &Path, org: &str) -> Outcome {
    console::status(false, &format!("fetching {source} …"));
    let checkout = ctx.fetch(source)?;
    let profile = Profile::detect(source, &checkout, Some(org));
    std::fs::write(output, profile.to_yaml()).map_err(io(output))?;
    println!("wrote {} for {}", output.display(), profile.repo_name);
    println!("  install:  {}", profile.install.join(" && "));
    println!("  test_cmd: {} ({:?} results)", profile.test_cmd, profile.log_parser);
    Ok(crate::EXIT_OK)
}

/// `bugsmith env build`: the profile's environment on `backend`.
pub fn env_build_command(ctx: &Context, profile_path: &Path, backend: BackendKind, out: &Path) -> Outcome {
    let started = Instant::now();
    let (env, log_dir) = env_build(ctx, profile_path, backend, out, true)?;
    println!("environment {env} ready in {:.1} s (log under {})", started.elapsed().as_secs_f64(), log_dir.display());
    Ok(crate::EXIT_OK)
}

/// The environment built (or found) without a word on the terminal, as a campaign prepares
/// the next source while another runs.
pub fn env_build_quietly(
    ctx: &Context,
    profile_path: &Path,
    backend: BackendKind,
    out: &Path,
) -> Result<String, Error> {
    env_build(ctx, profile_path, backend, out, false).map(|(env, _)| env)
}

fn env_build(
    ctx: &Context,
    profile_path: &Path,
    backend: BackendKind,
    out: &Path,
    say: bool,
) -> Result<(String, std::path::PathBuf), Error> {
    let profile = ctx.profile(profile_path)?;
    let checkout = ctx.checkout(&profile)?;
    let backend = ctx.backend(backend, Containment::default())?;
    let log_dir = out.join("build_images").join("env").join(&profile.repo_name);
    if say {
        console::status(false, &format!("building the {} environment of {} …", backend.name(), profile.repo_name));
    }
    let env = backend.build_env(&profile, &checkout, &log_dir)?;
    Ok((env, log_dir))
}
