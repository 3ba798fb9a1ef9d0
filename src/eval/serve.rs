//! `bugsmith serve`: evaluations over HTTP for reward loops (tiny_http; the only module that
//! serves HTTP). `POST /v1/evaluate {"instance_id", "model_patch"}` answers with the instance's
//! report as `eval` writes it, from warm workers kept per repository (as many requests at once
//! as there are workers). Loopback only unless a bearer token is required; errors are JSON with
//! an HTTP status. Tests run under the same sandbox as validation.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::backend::{Backend, Worker};
use crate::context::{Context, Error, Outcome};
use crate::eval::{self, Prediction, Repository};
use crate::records::TaskInstance;
use crate::settings::RunnerSettings;

/// Settings of the service.
pub struct Settings {
    /// `host:port` to listen on.
    pub bind: String,
    /// Bearer token clients must send (required for a non-loopback address).
    pub token: Option<String>,
    /// Requests evaluated at once (and warm workers per repository, at most).
    pub workers: usize,
    /// Where baselines are kept.
    pub out: PathBuf,
}

#[derive(Deserialize)]
struct Request {
    instance_id: String,
    #[serde(default)]
    model_patch: Option<String>,
    #[serde(default)]
    model_name_or_path: Option<String>,
}

/// An answer: status and JSON body.
type Answer = (u16, serde_json::Value);

fn error(status: u16, message: impl Into<String>) -> Answer {
    (status, serde_json::json!({ "error": message.into() }))
}

/// Compares without stopping at the first difference, so timing does not tell the token.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Idle warm workers per repository.
type Pool<'a> = Mutex<BTreeMap<String, Vec<Box<dyn Worker + 'a>>>>;

/// Serves until the process is stopped.
pub fn serve(
    backend: &dyn Backend,
    instances: &[TaskInstance],
    repositories: &BTreeMap<String, Repository>,
    settings: &Settings,
) -> Result<(), Error> {
    let address: std::net::SocketAddr =
        settings.bind.parse().map_err(|e| format!("--bind {}: {e} (expected HOST:PORT)", settings.bind))?;
    if !address.ip().is_loopback() && settings.token.is_none() {
        return Err(Error::Usage(format!(
            "--bind {address} is not a loopback address: give a token with --token-env VAR"
        )));
    }
    let by_id: BTreeMap<&str, &TaskInstance> = instances.iter().map(|i| (i.instance_id.as_str(), i)).collect();
    // One worker per repository first: it runs (or reads) the baseline that sets the timeout.
    let pool: Pool<'_> = Mutex::new(BTreeMap::new());
    let mut timeouts = BTreeMap::new();
    for (name, repository) in repositories {
        let mut worker =
            backend.start_worker(&repository.profile, &repository.checkout, 0).map_err(|e| e.to_string())?;
        timeouts.insert(name.clone(), eval::timeout_for(worker.as_mut(), repository, &settings.out)?);
        pool.lock().map_err(|_| "lock")?.entry(name.clone()).or_default().push(worker);
    }
    let server = tiny_http::Server::http(address).map_err(|e| format!("cannot listen on {address}: {e}"))?;
    let listening = server.server_addr().to_ip().map_or(address.to_string(), |a| a.to_string());
    println!("listening on http://{listening} ({} instances, {} workers)", instances.len(), settings.workers.max(1));
    let started_workers = Mutex::new(repositories.len());
    std::thread::scope(|scope| {
        for _ in 0..settings.workers.max(1) {
            scope.spawn(|| {
                while let Ok(mut request) = server.recv() {
                    let started = Instant::now();
                    let (status, body) = answer(
                        &mut request,
                        settings,
                        &by_id,
                        repositories,
                        &timeouts,
                        backend,
                        &pool,
                        &started_workers,
                    );
                    let text = serde_json::to_string(&body).unwrap_or_default();
                    let header = tiny_http::Header::from_bytes("Content-Type", "application/json").ok();
                    let timing = tiny_http::Header::from_bytes(
                        "X-Bugsmith-Seconds",
                        format!("{:.4}", started.elapsed().as_secs_f64()),
                    )
                    .ok();
                    let mut response = tiny_http::Response::from_string(text).with_status_code(status);
                    for h in [header, timing].into_iter().flatten() {
                        response = response.with_header(h);
                    }
                    let _ = request.respond(response);
                }
            });
        }
    });
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn answer<'a>(
    request: &mut tiny_http::Request,
    settings: &Settings,
    by_id: &BTreeMap<&str, &TaskInstance>,
    repositories: &'a BTreeMap<String, Repository>,
    timeouts: &BTreeMap<String, u64>,
    backend: &'a dyn Backend,
    pool: &Pool<'a>,
    started_workers: &Mutex<usize>,
) -> Answer {
    if let Some(token) = &settings.token {
        let sent = request
            .headers()
            .iter()
            .find(|h| h.field.equiv("Authorization"))
            .map(|h| h.value.as_str().trim().strip_prefix("Bearer ").unwrap_or("").trim().to_string())
            .unwrap_or_default();
        if !same(sent.as_bytes(), token.as_bytes()) {
            return error(401, "a bearer token is required (Authorization: Bearer …)");
        }
    }
    let path = request.url().split('?').next().unwrap_or("").to_string();
    match (request.method(), path.as_str()) {
        (tiny_http::Method::Get, "/v1/health") => {
            return (200, serde_json::json!({ "ok": true, "instances": by_id.len() }));
        }
        (tiny_http::Method::Post, "/v1/evaluate") => {}
        (_, "/v1/evaluate") => return error(405, "use POST"),
        _ => return error(404, format!("no such endpoint: {path} (POST /v1/evaluate, GET /v1/health)")),
    }
    let mut body = String::new();
    if request.as_reader().take(64 << 20).read_to_string(&mut body).is_err() {
        return error(400, "the body is not UTF-8 text");
    }
    let parsed: Request = match serde_json::from_str(&body) {
        Ok(r) => r,
        Err(e) => return error(400, format!("bad JSON: {e} (expected {{\"instance_id\", \"model_patch\"}})")),
    };
    let Some(instance) = by_id.get(parsed.instance_id.as_str()) else {
        return error(404, format!("unknown instance {}", parsed.instance_id));
    };
    let name = instance.repo_name();
    let (Some(repository), Some(timeout)) = (repositories.get(name), timeouts.get(name)) else {
        return error(503, format!("{name}: no environment (no profile was found for it)"));
    };
    let prediction = Prediction {
        instance_id: parsed.instance_id.clone(),
        model_patch: parsed.model_patch,
        model_name_or_path: parsed.model_name_or_path.unwrap_or_else(|| "serve".into()),
    };
    let idle = pool.lock().ok().and_then(|mut p| p.get_mut(name).and_then(Vec::pop));
    let mut worker = match idle {
        Some(worker) => worker,
        None => match backend.start_worker(&repository.profile, &repository.checkout, next(started_workers)) {
            Ok(worker) => worker,
            Err(e) => return error(500, format!("cannot start a worker: {e}")),
        },
    };
    let (done, replace) = eval::evaluate_one(
        worker.as_mut(),
        &repository.profile,
        instance,
        &prediction,
        Duration::from_secs(*timeout),
        String::new(),
    );
    if !replace && let Ok(mut p) = pool.lock() {
        p.entry(name.to_string()).or_default().push(worker);
    }
    let mut report = serde_json::to_value(&done.report).unwrap_or_default();
    if let Some(map) = report.as_object_mut() {
        map.remove("key");
    }
    (200, serde_json::json!({ parsed.instance_id: report }))
}

fn next(counter: &Mutex<usize>) -> usize {
    counter.lock().map_or(0, |mut c| {
        *c += 1;
        *c
    })
}

/// `bugsmith serve`: evaluation over HTTP for the instances' repositories.
pub fn command(
    ctx: &Context,
    instances_path: &std::path::Path,
    profile_paths: &[PathBuf],
    bind: &str,
    token_env: Option<&str>,
    runner: &RunnerSettings,
    out: &std::path::Path,
) -> Outcome {
    let instances = crate::records::read_instances(instances_path)?;
    let (profiles, problems) = crate::context::find_profiles(profile_paths, out, instances_path);
    for problem in &problems {
        eprintln!("  {problem}");
    }
    let token = match token_env {
        Some(var) => Some(
            std::env::var(var)
                .ok()
                .filter(|t| !t.is_empty())
                .ok_or_else(|| Error::Usage(format!("${var} is empty or not set")))?,
        ),
        None => None,
    };
    let backend = ctx.backend(runner.backend, runner.containment.clone())?;
    let (repositories, problems) = eval::prepare_repositories(ctx, backend.as_ref(), &instances, profiles, out, false);
    for problem in &problems {
        eprintln!("  {problem}");
    }
    let settings = Settings { bind: bind.to_string(), token, workers: runner.jobs, out: out.to_path_buf() };
    serve(backend.as_ref(), &instances, &repositories, &settings)?;
    Ok(crate::EXIT_OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        assert!(same(b"secret", b"secret"));
        assert!(!same(b"secret", b"secreT"));
        assert!(!same(b"secret", b"secret2"));
    }
}
