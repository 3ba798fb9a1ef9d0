//! The `docker` backend (bollard; the only module that talks to the daemon). One image per
//! repo@commit, built from the profile's base image by running the install commands in a
//! container with host networking (and the host's CA bundle), then committed. Workers are warm
//! containers without network or capabilities, with memory, pids and file-size limits, a
//! read-only root filesystem (the work tree is a volume of its own, temporary space a bounded
//! tmpfs emptied per candidate), running as a non-root user; each validates many candidates.
//! Containers are labelled with their run and owner ([`Owner`]), removed when dropped, on
//! errors and on Ctrl-C; at start only provably stale ones are swept (`bugsmith docker prune`
//! for the rest).

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use bollard::models::{ContainerConfig, ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CommitContainerOptionsBuilder, CreateContainerOptionsBuilder, RemoveContainerOptionsBuilder,
    UploadToContainerOptionsBuilder,
};
use futures_util::StreamExt;
use tokio::runtime::Runtime;

use super::owner::Owner;
use super::{Backend, BackendError, Exec, ExecOutput, FREEZE_INSTALLED_STATE, Result, Worker, check_step};
use crate::profile::{LimitSettings, Profile};
use crate::source::Checkout;

/// The user tests run as inside worker containers.
const TEST_USER: &str = "bugsmith";
/// Where the repository lives in images, as in SWE-smith.
const WORKDIR: &str = "/testbed";
const VENV: &str = "/venv";
const SCRATCH: &str = "/home/bugsmith/scratch";
const HOST_CA: &str = "/etc/ssl/certs/ca-certificates.crt";
const IMAGE_CA: &str = "/usr/local/share/bugsmith-host-ca.crt";
/// Label holding the profile's environment hash on images.
const ENV_LABEL: &str = "bugsmith.env-hash";
/// Label holding what an agent image was built from (validation image, mirror branches).
const AGENT_LABEL: &str = "bugsmith.agent-image";
/// Where agent images keep the mirror `/testbed`'s `origin` points at (offline `git fetch`).
const AGENT_MIRROR: &str = "/opt/bugsmith/mirror.git";
/// Label marking containers bugsmith made, holding the run's id.
const RUN_LABEL: &str = "bugsmith.run";
/// Label holding the owner (host identity, pid and start time: [`Owner::to_text`]).
const OWNER_LABEL: &str = "bugsmith.owner";
/// CPUs per worker container.
const CPUS: i64 = 2;

fn docker_error(what: &str) -> impl FnOnce(bollard::errors::Error) -> BackendError + '_ {
    move |e| BackendError(format!("docker: {what}: {e}"))
}

/// The Docker backend; one per process.
pub struct DockerBackend {
    docker: Docker,
    /// The daemon's address, as given.
    host: String,
    runtime: Arc<Runtime>,
    /// Limits from the command line (over the profile's).
    limits: LimitSettings,
    live: Arc<Mutex<LiveContainers>>,
    run_id: String,
    owner: Owner,
    _on_interrupt: crate::interrupt::Registration,
}

/// Containers alive now (removed on Ctrl-C), and whether shutdown began: from then on nothing
/// new starts, and a container whose creation was under way is removed as soon as it exists.
#[derive(Default)]
struct LiveContainers {
    ids: HashSet<String>,
    creating: usize,
    shutting_down: bool,
}

/// What `bugsmith docker prune` removed and left.
#[derive(Debug, Default)]
pub struct PruneSummary {
    /// Removed containers: (name, why).
    pub removed: Vec<(String, String)>,
    /// Containers left: (name, why).
    pub kept: Vec<(String, String)>,
}

impl DockerBackend {
    /// Connects to the daemon (`DOCKER_HOST` or the local socket) and checks it answers.
    pub fn connect(limits: LimitSettings) -> Result<DockerBackend> {
        DockerBackend::connect_to(None, limits)
    }

    /// Connects to the daemon at `host` (`unix:///path`, `tcp://host:port` (TLS with
    /// `DOCKER_CERT_PATH`), `https://…`, `ssh://user@host`), else `DOCKER_HOST` or the local socket.
    pub fn connect_to(host: Option<&str>, limits: LimitSettings) -> Result<DockerBackend> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| BackendError(format!("cannot start the async runtime: {e}")))?;
        let where_ = host
            .map(str::to_string)
            .unwrap_or_else(|| std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into()));
        let unreachable = |e: &dyn std::fmt::Display| {
            BackendError(format!(
                "cannot reach the Docker daemon at {where_} ({e}); is dockerd running? (DOCKER_HOST or --docker-host selects another)"
            ))
        };
        let docker = match host {
            None => Docker::connect_with_local_defaults(),
            Some(url) => connect_url(url),
        }
        .map_err(|e| unreachable(&e))?;
        runtime.block_on(async { tokio::time::timeout(Duration::from_secs(10), docker.ping()).await }).map_or_else(
            |_| Err(BackendError(format!("the Docker daemon at {where_} did not answer within 10 s"))),
            |r| r.map(|_| ()).map_err(|e| unreachable(&e)),
        )?;
        let live: Arc<Mutex<LiveContainers>> = Arc::default();
        let runtime = Arc::new(runtime);
        let on_interrupt = crate::interrupt::on_interrupt({
            let (docker, runtime, live) = (docker.clone(), runtime.clone(), live.clone());
            move || {
                let removed = runtime.block_on(remove_all_live(&docker, &live));
                (removed > 0).then(|| format!("removed {removed} container(s)"))
            }
        });
        let owner = Owner::current();
        let backend = DockerBackend {
            docker,
            host: where_,
            runtime,
            limits,
            live,
            run_id: format!("{}-{}", owner.pid, random_hex()),
            owner,
            _on_interrupt: on_interrupt,
        };
        backend.runtime.block_on(backend.prune(false, None));
        Ok(backend)
    }

    /// Removes bugsmith's containers: those provably stale (made on this host by a process that
    /// is gone), and with `all` every one, or with `older_than` those created longer ago.
    pub fn prune_command(&self, all: bool, older_than: Option<Duration>) -> PruneSummary {
        self.block_on(self.prune(all, older_than))
    }

    async fn prune(&self, all: bool, older_than: Option<Duration>) -> PruneSummary {
        let mut summary = PruneSummary::default();
        let filters: HashMap<&str, Vec<&str>> = [("label", vec![RUN_LABEL])].into();
        let options =
            bollard::query_parameters::ListContainersOptionsBuilder::new().all(true).filters(&filters).build();
        let Ok(containers) = self.docker.list_containers(Some(options)).await else { return summary };
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        for container in containers {
            let Some(id) = container.id else { continue };
            let name =
                container.names.and_then(|n| n.first().cloned()).unwrap_or_else(|| id[..12.min(id.len())].into());
            let labels = container.labels.unwrap_or_default();
            let run = labels.get(RUN_LABEL).cloned().unwrap_or_default();
            if run == self.run_id {
                continue;
            }
            let owner = labels.get(OWNER_LABEL).and_then(|o| Owner::parse(o));
            let age = Duration::from_secs(now.saturating_sub(container.created.unwrap_or(0).max(0) as u64));
            let reason = if owner.as_ref().is_some_and(Owner::is_stale) {
                Some("its run is gone".to_string())
            } else if all {
                Some("--all".to_string())
            } else if older_than.is_some_and(|limit| age > limit) {
                Some(format!("created {} ago", humantime::format_duration(Duration::from_secs(age.as_secs()))))
            } else {
                None
            };
            match reason {
                Some(reason) => {
                    let options = RemoveContainerOptionsBuilder::default().force(true).v(true).build();
                    if self.docker.remove_container(&id, Some(options)).await.is_ok() {
                        summary.removed.push((name, reason));
                    }
                }
                None => {
                    let why = match owner {
                        Some(o) if o.host == super::owner::host_id() => format!("run {run} (pid {}) is alive", o.pid),
                        Some(o) => format!("run {run} belongs to another host ({})", o.host),
                        None => format!("run {run} has no owner label"),
                    };
                    summary.kept.push((name, why));
                }
            }
        }
        summary
    }

    fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    async fn create(&self, image: &str, host_config: HostConfig, user: Option<&str>) -> Result<String> {
        self.create_with(image, host_config, user, None).await
    }

    /// Creates and starts a container; none is started once shutdown has begun.
    async fn create_with(
        &self,
        image: &str,
        host_config: HostConfig,
        user: Option<&str>,
        volumes: Option<Vec<String>>,
    ) -> Result<String> {
        let labels: HashMap<String, String> =
            [(RUN_LABEL.to_string(), self.run_id.clone()), (OWNER_LABEL.to_string(), self.owner.to_text())].into();
        let body = ContainerCreateBody {
            image: Some(image.to_string()),
            cmd: Some(vec!["sleep".into(), "infinity".into()]),
            user: user.map(str::to_string),
            working_dir: Some(WORKDIR.into()),
            labels: Some(labels),
            host_config: Some(host_config),
            volumes,
            ..Default::default()
        };
        {
            let mut live = self.live.lock().map_err(|_| BackendError("lock".into()))?;
            if live.shutting_down {
                return Err(BackendError("interrupted".into()));
            }
            live.creating += 1;
        }
        let created = self.docker.create_container(Some(CreateContainerOptionsBuilder::default().build()), body).await;
        let late = {
            let mut live = self.live.lock().map_err(|_| BackendError("lock".into()))?;
            live.creating -= 1;
            if let Ok(created) = &created
                && !live.shutting_down
            {
                live.ids.insert(created.id.clone());
            }
            live.shutting_down
        };
        let created = created.map_err(docker_error("cannot create a container"))?;
        if late {
            let options = RemoveContainerOptionsBuilder::default().force(true).v(true).build();
            let _ = self.docker.remove_container(&created.id, Some(options)).await;
            return Err(BackendError("interrupted".into()));
        }
        if let Err(e) = self.docker.start_container(&created.id, None).await {
            self.remove(&created.id).await;
            return Err(BackendError(format!("docker: cannot start a container from {image}: {e}")));
        }
        Ok(created.id)
    }

    async fn remove(&self, id: &str) {
        let options = RemoveContainerOptionsBuilder::default().force(true).v(true).build();
        let _ = self.docker.remove_container(id, Some(options)).await;
        if let Ok(mut live) = self.live.lock() {
            live.ids.remove(id);
        }
    }

    async fn upload(&self, id: &str, tar: Vec<u8>) -> Result<()> {
        self.docker
            .upload_to_container(
                id,
                Some(UploadToContainerOptionsBuilder::default().path("/").build()),
                bollard::body_full(bytes::Bytes::from(tar)),
            )
            .await
            .map_err(docker_error("cannot copy files into the container"))
    }

    async fn exec(&self, id: &str, exec: &Exec, user: Option<&str>) -> Result<ExecOutput> {
        let started = Instant::now();
        let env: Vec<String> = exec.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let created = self
            .docker
            .create_exec(
                id,
                CreateExecOptions {
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    env: Some(env),
                    cmd: Some(vec!["bash".to_string(), "-c".to_string(), exec.script.clone()]),
                    user: user.map(str::to_string),
                    working_dir: Some(WORKDIR.to_string()),
                    ..Default::default()
                },
            )
            .await
            .map_err(docker_error("cannot create an exec"))?;
        let started_exec = self
            .docker
            .start_exec(&created.id, Some(StartExecOptions { detach: false, ..Default::default() }))
            .await
            .map_err(docker_error("cannot start an exec"))?;
        let mut output = Vec::new();
        let collected = match started_exec {
            StartExecResults::Attached { output: mut stream, .. } => {
                tokio::time::timeout(exec.timeout, async {
                    while let Some(chunk) = stream.next().await {
                        match chunk {
                            Ok(log) => output.extend_from_slice(&log.into_bytes()),
                            Err(e) => return Err(BackendError(format!("docker: exec output: {e}"))),
                        }
                    }
                    Ok(())
                })
                .await
            }
            StartExecResults::Detached => Ok(Ok(())),
        };
        let timed_out = match collected {
            Ok(result) => {
                result?;
                false
            }
            Err(_) => true,
        };
        // The runner reports everything in its output; only other commands need the status.
        let exit_code = if timed_out || !exec.want_exit_code {
            None
        } else {
            self.docker.inspect_exec(&created.id).await.map_err(docker_error("cannot inspect an exec"))?.exit_code
        };
        Ok(ExecOutput {
            exit_code,
            output: String::from_utf8_lossy(&output).into_owned(),
            duration: started.elapsed(),
            timed_out,
        })
    }

    /// Whether an image exists, with its environment label.
    async fn image_label(&self, image: &str) -> Option<Option<String>> {
        let inspect = self.docker.inspect_image(image).await.ok()?;
        Some(inspect.config.and_then(|c| c.labels).and_then(|l| l.get(ENV_LABEL).cloned()))
    }

    /// The daemon's address.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Makes sure the profile's validation image is on this daemon, copying it from `from`
    /// (`docker save | docker load`, streamed) when it is missing or stale.
    pub fn ensure_image_from(&self, from: &DockerBackend, profile: &Profile) -> Result<()> {
        let image = profile.validation_image();
        let hash = profile.env_hash();
        if self.block_on(self.image_label(&image)) == Some(Some(hash)) {
            return Ok(());
        }
        let tarball: Vec<bytes::Bytes> = from.block_on(async {
            let mut chunks = Vec::new();
            let mut stream = from.docker.export_image(&image);
            while let Some(chunk) = stream.next().await {
                chunks.push(chunk.map_err(docker_error("export the image"))?);
            }
            Ok::<_, BackendError>(chunks)
        })?;
        self.block_on(async {
            let body = futures_util::stream::iter(tarball.into_iter().map(Ok::<_, std::io::Error>));
            let options = bollard::query_parameters::ImportImageOptionsBuilder::default().quiet(true).build();
            let mut load = self.docker.import_image_stream(options, body, None);
            while let Some(step) = load.next().await {
                let step = step.map_err(docker_error("load the image"))?;
                if let Some(error) = step.error_detail.and_then(|d| d.message) {
                    return Err(BackendError(format!("docker at {}: loading {image}: {error}", self.host)));
                }
            }
            Ok(())
        })
    }
}

/// A client for a daemon address.
fn connect_url(url: &str) -> std::result::Result<Docker, bollard::errors::Error> {
    const TIMEOUT: u64 = 120;
    let version = bollard::API_DEFAULT_VERSION;
    if let Some(path) = url.strip_prefix("unix://") {
        return Docker::connect_with_unix(path, TIMEOUT, version);
    }
    if url.starts_with("ssh://") {
        return Docker::connect_with_ssh(url, TIMEOUT, version, None);
    }
    let certs = std::env::var_os("DOCKER_CERT_PATH").map(std::path::PathBuf::from);
    match certs {
        Some(dir) if url.starts_with("tcp://") || url.starts_with("https://") => Docker::connect_with_ssl(
            url,
            &dir.join("key.pem"),
            &dir.join("cert.pem"),
            &dir.join("ca.pem"),
            TIMEOUT,
            version,
        ),
        _ => Docker::connect_with_http(url, TIMEOUT, version),
    }
}

/// Several daemons as one backend: the environment is built on the first and copied to the
/// others; workers are spread over them in turn (worker `i` on daemon `i mod n`).
pub struct DockerHosts {
    hosts: Vec<DockerBackend>,
}

impl DockerHosts {
    /// Connects to every address (at least one).
    pub fn connect(urls: &[String], limits: &LimitSettings) -> Result<DockerHosts> {
        let hosts =
            urls.iter().map(|u| DockerBackend::connect_to(Some(u), limits.clone())).collect::<Result<Vec<_>>>()?;
        if hosts.is_empty() {
            return Err(BackendError("no Docker host given".into()));
        }
        Ok(DockerHosts { hosts })
    }
}

impl Backend for DockerHosts {
    fn name(&self) -> &'static str {
        "docker"
    }

    fn build_env(&self, profile: &Profile, checkout: &Checkout, log_dir: &Path) -> Result<String> {
        let env = self.hosts[0].build_env(profile, checkout, log_dir)?;
        for host in &self.hosts[1..] {
            host.ensure_image_from(&self.hosts[0], profile)?;
        }
        Ok(env)
    }

    fn start_worker<'a>(
        &'a self,
        profile: &Profile,
        checkout: &Checkout,
        index: usize,
    ) -> Result<Box<dyn Worker + 'a>> {
        let host = &self.hosts[index % self.hosts.len()];
        tracing::debug!("worker {index} on the Docker daemon at {}", host.host());
        host.start_worker(profile, checkout, index)
    }
}

/// Ctrl-C: stops new containers, waits for creations under way (they remove themselves), and
/// removes every live one with its volumes. Returns how many were removed.
async fn remove_all_live(docker: &Docker, live: &Mutex<LiveContainers>) -> usize {
    let ids: Vec<String> = match live.lock() {
        Ok(mut live) => {
            live.shutting_down = true;
            live.ids.drain().collect()
        }
        Err(_) => return 0,
    };
    let options = RemoveContainerOptionsBuilder::default().force(true).v(true).build();
    for id in &ids {
        let _ = docker.remove_container(id, Some(options.clone())).await;
    }
    for _ in 0..300 {
        if live.lock().map_or(true, |l| l.creating == 0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ids.len()
}

/// `repo` and `tag` of an image name (`latest` when it has none).
fn split_tag(image: &str) -> (&str, &str) {
    match image.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, tag),
        _ => (image, "latest"),
    }
}

/// A tar archive holding `dir` at `at` (an absolute path in the container).
fn pack(dir: &Path, at: &str) -> Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    builder.follow_symlinks(false);
    builder
        .append_dir_all(at.trim_start_matches('/'), dir)
        .map_err(|e| BackendError(format!("cannot pack {}: {e}", dir.display())))?;
    builder.into_inner().map_err(|e| BackendError(format!("cannot pack: {e}")))
}

/// A tar archive holding `dir` as `/testbed` and the host's CA bundle.
fn build_context(dir: &Path) -> Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    builder.follow_symlinks(false);
    builder
        .append_dir_all(WORKDIR.trim_start_matches('/'), dir)
        .map_err(|e| BackendError(format!("cannot pack {}: {e}", dir.display())))?;
    if Path::new(HOST_CA).is_file() {
        builder
            .append_path_with_name(HOST_CA, IMAGE_CA.trim_start_matches('/'))
            .map_err(|e| BackendError(format!("cannot pack {HOST_CA}: {e}")))?;
    }
    builder.into_inner().map_err(|e| BackendError(format!("cannot pack: {e}")))
}

impl Backend for DockerBackend {
    fn name(&self) -> &'static str {
        "docker"
    }

    fn build_env(&self, profile: &Profile, checkout: &Checkout, log_dir: &Path) -> Result<String> {
        let hash = profile.env_hash();
        let image = profile.validation_image();
        self.block_on(async {
            if self.image_label(&image).await == Some(Some(hash.clone())) {
                return Ok(format!("docker:{image}"));
            }
            if self.image_label(&profile.base_image).await.is_none() {
                return Err(BackendError(format!(
                    "base image {} is missing: build it with .ci/base-image.sh (no registry is used)",
                    profile.base_image
                )));
            }
            std::fs::create_dir_all(log_dir).map_err(|e| BackendError(format!("{}: {e}", log_dir.display())))?;
            let host = HostConfig { network_mode: Some("host".into()), ..Default::default() };
            let id = self.create(&profile.base_image, host, Some("root")).await?;
            let result = self.install(&id, profile, checkout, log_dir).await;
            let committed = match result {
                Ok(()) => self.commit(&id, profile, &hash).await,
                Err(e) => Err(e),
            };
            self.remove(&id).await;
            committed.map(|()| format!("docker:{image}"))
        })
    }

    fn start_worker<'a>(
        &'a self,
        profile: &Profile,
        _checkout: &Checkout,
        _index: usize,
    ) -> Result<Box<dyn Worker + 'a>> {
        let limits = self.limits.resolve(&profile.limits);
        let tmpfs = [
            ("/tmp".to_string(), format!("size={},mode=1777", limits.tmp)),
            (SCRATCH.to_string(), format!("size={},uid=1000,gid=1000,mode=0700", limits.tmp)),
        ];
        let host = HostConfig {
            network_mode: Some("none".into()),
            memory: Some(limits.memory as i64),
            memory_swap: Some(limits.memory as i64),
            pids_limit: Some(limits.pids as i64),
            cap_drop: Some(vec!["ALL".into()]),
            security_opt: Some(vec!["no-new-privileges".into()]),
            nano_cpus: Some(CPUS * 1_000_000_000),
            init: Some(true),
            readonly_rootfs: Some(true),
            tmpfs: Some(tmpfs.into()),
            ..Default::default()
        };
        // The work tree is the one writable place that lasts: a volume filled from the image.
        let volumes = Some(vec![WORKDIR.to_string()]);
        let id = self.block_on(self.create_with(&profile.validation_image(), host, Some(TEST_USER), volumes))?;
        let mut env = vec![
            ("SWEEP".to_string(), "1".to_string()),
            ("CANDIDATE_ROOT".to_string(), "/tmp".to_string()),
            ("WIPE_SHM".to_string(), "1".to_string()),
            ("ULIMITS".to_string(), format!("f:{}", limits.file_size / 1024)),
            ("HOME".to_string(), "/tmp/home".to_string()),
            ("PYTHONDONTWRITEBYTECODE".to_string(), "1".to_string()),
        ];
        env.extend(profile.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        Ok(Box::new(DockerWorker { backend: self, id, env, session: None, requests: 0 }))
    }
}

/// Turns a validation container's `/testbed` (installed state committed) into a clone of the
/// mirror: `main` checked out, every instance branch local and on `origin` (a path in the
/// image, so `git fetch` works offline); the install's artefacts stay, untracked and ignored, so
/// checkouts and `git clean -fd` keep the environment. A conda shim lets SWE-smith's and SWE-bench's `conda
/// activate testbed` lines fall through to `/venv`.
const AGENT_SETUP: &str = r#"set -e
cd /testbed
rm -rf .git
git init -q
git symbolic-ref HEAD refs/heads/main
git remote add origin "$AGENT_MIRROR"
git fetch -q origin '+refs/heads/*:refs/remotes/origin/*'
git update-ref refs/heads/main refs/remotes/origin/main
git reset -q
git branch -q --set-upstream-to=origin/main main
# The install's artefacts are untracked: ignored, so `git clean -fd` and checkouts keep them.
git ls-files --others --exclude-standard --directory | sed 's|^|/|' >> .git/info/exclude
for ref in $(git for-each-ref --format='%(refname:strip=3)' refs/remotes/origin/); do
  case "$ref" in main|HEAD) ;; *) git branch -q -f "$ref" "origin/$ref" ;; esac
done
git ls-files --others --exclude-standard -z .github/workflows | xargs -0 -r rm -f
git config --system --add safe.directory '*'
mkdir -p /opt/miniconda3/bin
printf '%s
' '# bugsmith: no conda in this image; the environment is /venv.'   'export PATH=/venv/bin:$PATH VIRTUAL_ENV=/venv' 'conda() { :; }' > /opt/miniconda3/bin/activate
echo "branches: $(git branch | wc -l)"
git status --short | head -20"#;

impl DockerBackend {
    /// Whether an image exists.
    pub fn has_image(&self, image: &str) -> bool {
        self.block_on(self.docker.inspect_image(image)).is_ok()
    }

    /// Builds (or refreshes, when the mirror's branches changed) the image agents run in,
    /// `profile.image_name`, on the validation image; returns whether it was built now.
    pub fn build_agent_image(&self, profile: &Profile, mirror: &Path, branches: &[(String, String)]) -> Result<bool> {
        let base = profile.validation_image();
        let stamp = crate::patch::hash8(&format!("{base}\n{AGENT_SETUP}\n{branches:?}"));
        let (repo, tag) = split_tag(&profile.image_name);
        self.block_on(async {
            let current = self.docker.inspect_image(&profile.image_name).await.ok();
            if current.and_then(|i| i.config).and_then(|c| c.labels).and_then(|l| l.get(AGENT_LABEL).cloned())
                == Some(stamp.clone())
            {
                return Ok(false);
            }
            if self.image_label(&base).await.is_none() {
                return Err(BackendError(format!(
                    "no validation image {base}: run `bugsmith env build --backend docker` first"
                )));
            }
            let host = HostConfig { network_mode: Some("none".into()), ..Default::default() };
            let id = self.create(&base, host, Some("root")).await?;
            let built = async {
                self.upload(&id, pack(mirror, AGENT_MIRROR)?).await?;
                let exec = Exec {
                    script: AGENT_SETUP.into(),
                    env: vec![("AGENT_MIRROR".into(), AGENT_MIRROR.into())],
                    timeout: Duration::from_secs(600),
                    want_exit_code: true,
                };
                let out = self.exec(&id, &exec, Some("root")).await?;
                if out.exit_code != Some(0) {
                    return Err(BackendError(format!("agent image setup failed: {}", super::tail(&out.output, 10))));
                }
                let mut env = vec![
                    format!("PATH={VENV}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
                    format!("VIRTUAL_ENV={VENV}"),
                    "LANG=C.UTF-8".into(),
                ];
                env.extend(profile.env.iter().map(|(k, v)| format!("{k}={v}")));
                let config = ContainerConfig {
                    env: Some(env),
                    working_dir: Some(WORKDIR.into()),
                    user: Some("root".into()),
                    labels: Some([(AGENT_LABEL.to_string(), stamp.clone())].into()),
                    cmd: Some(vec!["sleep".into(), "infinity".into()]),
                    ..Default::default()
                };
                let options = CommitContainerOptionsBuilder::default().container(&id).repo(repo).tag(tag).build();
                self.docker
                    .commit_container(options, config)
                    .await
                    .map_err(docker_error("cannot commit the agent image"))?;
                Ok(())
            }
            .await;
            self.remove(&id).await;
            built.map(|()| true)
        })
    }

    /// Runs `script` as root in a container of `image` (no network) and commits the result
    /// under each of `tags` (`repo:tag`).
    pub fn derive_image(&self, image: &str, script: &str, tags: &[String]) -> Result<()> {
        let Some((first, rest)) = tags.split_first() else { return Ok(()) };
        self.block_on(async {
            let host = HostConfig { network_mode: Some("none".into()), ..Default::default() };
            let id = self.create(image, host, Some("root")).await?;
            let done = async {
                let exec = Exec {
                    script: script.into(),
                    env: Vec::new(),
                    timeout: Duration::from_secs(300),
                    want_exit_code: true,
                };
                let out = self.exec(&id, &exec, Some("root")).await?;
                if out.exit_code != Some(0) {
                    return Err(BackendError(format!("`{script}` failed in {image}: {}", super::tail(&out.output, 5))));
                }
                let (repo, tag) = split_tag(first);
                let options = CommitContainerOptionsBuilder::default().container(&id).repo(repo).tag(tag).build();
                // The image's own config (cmd, env, workdir) carries over.
                self.docker
                    .commit_container(options, ContainerConfig::default())
                    .await
                    .map_err(docker_error("cannot commit"))?;
                for other in rest {
                    let (repo, tag) = split_tag(other);
                    let options =
                        bollard::query_parameters::TagImageOptionsBuilder::default().repo(repo).tag(tag).build();
                    self.docker.tag_image(first, Some(options)).await.map_err(docker_error("cannot tag"))?;
                }
                Ok(())
            }
            .await;
            self.remove(&id).await;
            done
        })
    }

    async fn install(&self, id: &str, profile: &Profile, checkout: &Checkout, log_dir: &Path) -> Result<()> {
        let context = build_context(&checkout.root)?;
        self.upload(id, context).await?;
        let mut log = String::new();
        let mut steps = vec![
            format!("useradd -m -u 1000 {TEST_USER} 2>/dev/null || true"),
            format!("git config --system --add safe.directory {WORKDIR}"),
            format!("python3 -m venv {VENV}"),
        ];
        steps.extend(profile.install.iter().cloned());
        steps.push(super::tooling_step());
        steps.push(FREEZE_INSTALLED_STATE.to_string());
        steps.push(format!("mkdir -p {SCRATCH} && chown -R {TEST_USER}: {WORKDIR} /home/{TEST_USER}"));
        let mut env: Vec<(String, String)> = vec![
            ("PATH".into(), format!("{VENV}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")),
            ("VIRTUAL_ENV".into(), VENV.into()),
            ("PIP_DISABLE_PIP_VERSION_CHECK".into(), "1".into()),
        ];
        if Path::new(HOST_CA).is_file() {
            for key in ["PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"] {
                env.push((key.into(), IMAGE_CA.into()));
            }
        }
        env.extend(profile.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        for step in &steps {
            let exec = Exec {
                script: step.clone(),
                env: env.clone(),
                timeout: Duration::from_secs(profile.timeout_ref.max(600)),
                want_exit_code: true,
            };
            let out = self.exec(id, &exec, Some("root")).await?;
            check_step("image build", step, &out, &mut log, &log_dir.join("build_image.log"))?;
        }
        std::fs::write(log_dir.join("build_image.log"), &log)
            .map_err(|e| BackendError(format!("{}: {e}", log_dir.display())))
    }

    async fn commit(&self, id: &str, profile: &Profile, hash: &str) -> Result<()> {
        let image = profile.validation_image();
        let (image_repo, image_tag) = split_tag(&image);
        let mut labels = HashMap::new();
        labels.insert(ENV_LABEL.to_string(), hash.to_string());
        let config = ContainerConfig {
            env: Some(vec![
                format!("PATH={VENV}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
                format!("VIRTUAL_ENV={VENV}"),
                "LANG=C.UTF-8".into(),
            ]),
            working_dir: Some(WORKDIR.into()),
            labels: Some(labels),
            cmd: Some(vec!["sleep".into(), "infinity".into()]),
            ..Default::default()
        };
        let options =
            CommitContainerOptionsBuilder::default().container(id).repo(image_repo).tag(image_tag).pause(true).build();
        self.docker.commit_container(options, config).await.map_err(docker_error("cannot commit the image"))?;
        Ok(())
    }
}

struct DockerWorker<'a> {
    backend: &'a DockerBackend,
    id: String,
    env: Vec<(String, String)>,
    /// The open runner session, when one is running.
    session: Option<Session>,
    requests: u64,
}

/// A long-lived `bash` in the container that runs the runner once per request line, so a
/// candidate costs no `docker exec` set-up (the dominant cost of a warm container).
struct Session {
    input: std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>,
    output: std::pin::Pin<
        Box<
            dyn futures_util::Stream<Item = std::result::Result<bollard::container::LogOutput, bollard::errors::Error>>
                + Send,
        >,
    >,
    buffer: Vec<u8>,
}

/// Records the processes that exist before any test (kept by the runner's sweep), then reads
/// `NONCE KEY=BASE64 …` lines, exports the variables (`FILE:<name>` keys become files in
/// the scratch directory), runs the runner, ends with the nonce. A variable the session did not
/// have before a request is unset after it (a selected run's `BUGSMITH_SELECT` must not reach
/// the next, whole-suite run).
const SESSION_LOOP: &str = r#"keep=(/proc/[0-9]*)
export KEEP_PIDS="${keep[*]#/proc/}"
while read -r nonce pairs; do
  fresh=""
  for pair in $pairs; do
    key=${pair%%=*}
    case "$key" in
      FILE:*) printf '%s' "${pair#*=}" | base64 -d > "$SCRATCH/${key#FILE:}" ;;
      *)
        [ -n "${!key+x}" ] || fresh="$fresh $key"
        export "$key=$(printf '%s' "${pair#*=}" | base64 -d)" ;;
    esac
  done
  bash -c "$RUNNER_SCRIPT" < /dev/null 2>&1
  for key in $fresh; do unset "$key"; done
  echo ">>>>> bugsmith done $nonce"
done"#;

impl DockerBackend {
    async fn open_session(&self, id: &str, env: &[(String, String)]) -> Result<Session> {
        let mut env: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        env.push(format!("RUNNER_SCRIPT={}", super::RUNNER));
        let created = self
            .docker
            .create_exec(
                id,
                CreateExecOptions {
                    attach_stdin: Some(true),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    env: Some(env),
                    cmd: Some(vec!["bash".to_string(), "-c".to_string(), SESSION_LOOP.to_string()]),
                    user: Some(TEST_USER.to_string()),
                    working_dir: Some(WORKDIR.to_string()),
                    ..Default::default()
                },
            )
            .await
            .map_err(docker_error("cannot create the runner session"))?;
        match self
            .docker
            .start_exec(&created.id, None)
            .await
            .map_err(docker_error("cannot start the runner session"))?
        {
            StartExecResults::Attached { output, input } => Ok(Session { input, output, buffer: Vec::new() }),
            StartExecResults::Detached => Err(BackendError("docker: the runner session is detached".into())),
        }
    }
}

impl Session {
    /// Sends one request and reads up to its end marker.
    async fn request(&mut self, nonce: &str, env: &[(String, String)], timeout: Duration) -> Result<Option<String>> {
        use tokio::io::AsyncWriteExt;
        let engine = base64::engine::general_purpose::STANDARD;
        let mut line = nonce.to_string();
        for (key, value) in env {
            line.push(' ');
            line.push_str(key);
            line.push('=');
            line.push_str(&base64::Engine::encode(&engine, value));
        }
        line.push('\n');
        self.input
            .write_all(line.as_bytes())
            .await
            .map_err(|e| BackendError(format!("docker: runner session: {e}")))?;
        self.input.flush().await.map_err(|e| BackendError(format!("docker: runner session: {e}")))?;
        let marker = format!(">>>>> bugsmith done {nonce}\n");
        let read = tokio::time::timeout(timeout, async {
            let mut searched: usize = 0;
            loop {
                let from = searched.saturating_sub(marker.len());
                searched = self.buffer.len();
                if let Some(at) = find(&self.buffer[from..], marker.as_bytes()).map(|i| i + from) {
                    let text = String::from_utf8_lossy(&self.buffer[..at]).into_owned();
                    self.buffer.drain(..at + marker.len());
                    return Ok(text);
                }
                match self.output.next().await {
                    Some(Ok(chunk)) => self.buffer.extend_from_slice(&chunk.into_bytes()),
                    Some(Err(e)) => return Err(BackendError(format!("docker: runner session: {e}"))),
                    None => return Err(BackendError("docker: the runner session ended".into())),
                }
            }
        })
        .await;
        match read {
            Ok(result) => result.map(Some),
            Err(_) => Ok(None),
        }
    }
}

/// 16 random hex digits from the operating system (the marker a test cannot guess).
fn random_hex() -> String {
    use std::io::Read;
    let mut bytes = [0u8; 8];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if read.is_err() {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        bytes = (now.as_nanos() as u64).to_le_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

impl Worker for DockerWorker<'_> {
    fn workdir(&self) -> String {
        WORKDIR.into()
    }

    fn scratch(&self) -> String {
        SCRATCH.into()
    }

    fn exec(&mut self, exec: &Exec) -> Result<ExecOutput> {
        let mut env = self.env.clone();
        env.extend(exec.env.iter().cloned());
        let exec = Exec { env, ..exec.clone() };
        self.backend.block_on(self.backend.exec(&self.id, &exec, Some(TEST_USER)))
    }

    fn run_candidate(
        &mut self,
        files: &[(&str, &str)],
        mut env: Vec<(String, String)>,
        timeout: Duration,
    ) -> Result<ExecOutput> {
        let started = Instant::now();
        env.extend(files.iter().map(|(name, text)| (format!("FILE:{name}"), (*text).to_string())));
        let backend = self.backend;
        if self.session.is_none() {
            self.session = Some(backend.block_on(backend.open_session(&self.id, &self.env))?);
        }
        self.requests += 1;
        let nonce = format!("{}{:x}", random_hex(), self.requests);
        let session = self.session.as_mut().ok_or_else(|| BackendError("no session".into()))?;
        let answer = backend.block_on(session.request(&nonce, &env, timeout));
        let answer = match answer {
            Ok(answer) => answer,
            Err(e) => {
                self.session = None;
                return Err(e);
            }
        };
        if answer.is_none() {
            self.session = None;
        }
        Ok(ExecOutput {
            exit_code: None,
            timed_out: answer.is_none(),
            output: answer.unwrap_or_default(),
            duration: started.elapsed(),
        })
    }
}

impl Drop for DockerWorker<'_> {
    fn drop(&mut self) {
        self.backend.block_on(self.backend.remove(&self.id));
    }
}
