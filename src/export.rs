//! Exports for the tools agents are trained and scored with: a SWE-smith `RepoProfile` to
//! register, SWE-bench instances (the fix as `patch`, the removed tests as `test_patch`, a SHA
//! as `base_commit`) with the spec module and per-instance images its harness needs, and
//! function-level tasks (a function's body removed, its F2P tests, the reference body).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::ast::{EntityKind, SourceFile};
use crate::backend::docker::DockerBackend;
use crate::context::{Context, Error, Outcome};
use crate::files::write_atomic;
use crate::git::Mirror;
use crate::patch;
use crate::profile::{LogParser, Profile};
use crate::records::TaskInstance;

/// A Python string literal (JSON's escapes are valid Python).
fn py(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_default()
}

/// The test command as run in an agent image: the profile's variables, then the command.
fn agent_test_cmd(profile: &Profile) -> String {
    let exports: Vec<String> = profile.env.iter().map(|(k, v)| format!("export {k}={};", shell_quote(v))).collect();
    if exports.is_empty() { profile.test_cmd.clone() } else { format!("{} {}", exports.join(" "), profile.test_cmd) }
}

fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// A Python parser for unittest's verbose lines, keyed by bugsmith's unittest ids.
const UNITTEST_PARSER: &str = r#"_UNITTEST_LINE = re.compile(r"^(\S+ \([\w.]+\)) \.\.\. (ok|FAIL|ERROR|skipped.*|expected failure|unexpected success)\s*$")
_UNITTEST_STATUS = {"ok": "PASSED", "FAIL": "FAILED", "ERROR": "ERROR", "expected failure": "XFAIL", "unexpected success": "PASSED"}


def parse_unittest_log(log):
    """unittest's verbose lines (`test_x (pkg.mod.Class.test_x) ... ok`) -> {test id: status}."""
    status = {}
    for line in log.split("\n"):
        match = _UNITTEST_LINE.match(line)
        if match:
            status[match.group(1)] = _UNITTEST_STATUS.get(match.group(2), "SKIPPED")
    return status
"#;

/// Writes the Python module that registers `profile` with SWE-smith's registry.
pub fn write_swesmith_profile(profile: &Profile, output: &Path) -> Result<(), Error> {
    let (owner, repo) = profile.owner_and_repo();
    let class: String = format!("Bugsmith_{}", profile.repo_name)
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let derived = crate::profile::image_name(profile.org(), owner, repo, &profile.commit);
    let image = if derived == profile.image_name {
        String::new()
    } else {
        format!("\n    @property\n    def image_name(self) -> str:\n        return {}\n", py(&profile.image_name))
    };
    let parser = if profile.log_parser == LogParser::Unittest {
        "\n    def log_parser(self, log: str) -> dict[str, str]:\n        return parse_unittest_log(log)\n"
    } else {
        ""
    };
    let text = format!(
        r#""""SWE-smith profile for {repo_name}, written by bugsmith.

Import this module before SWE-smith's harness runs (for example `import {module}` at the top of
a driver script, or `python -c "import {module}; from swesmith.harness.eval import main; ..."`):
it registers the repository, so `registry.get_from_inst` finds its instances (`repo`
{mirror_name}), their image {image_name} and the test command below.
"""

import re
from dataclasses import dataclass

from swesmith.profiles import registry
from swesmith.profiles.python import PythonProfile

{unittest}

@dataclass
class {class}(PythonProfile):
    owner: str = {owner}
    repo: str = {repo}
    commit: str = {commit}
    org_gh: str = {org}
    org_dh: str = {org}
    python_version: str = {python}
    test_cmd: str = {test_cmd}
    timeout: int = {timeout}
    timeout_ref: int = {timeout_ref}
{image}{parser}

registry.register_profile({class})
"#,
        repo_name = profile.repo_name,
        module = output.file_stem().map_or("profile".into(), |s| s.to_string_lossy().to_string()),
        mirror_name = profile.mirror_name(),
        image_name = profile.image_name,
        unittest = UNITTEST_PARSER,
        owner = py(owner),
        repo = py(repo),
        commit = py(&profile.commit),
        org = py(profile.org()),
        python = py(&profile.python_version),
        test_cmd = py(&agent_test_cmd(profile)),
        timeout = profile.timeout.unwrap_or(300).max(90),
        timeout_ref = profile.timeout_ref,
    );
    write_atomic(output, text.as_bytes()).map_err(crate::context::io(output))
}

/// One instance as SWE-bench's harness reads it.
#[derive(Clone, Debug, Serialize)]
#[allow(non_snake_case)]
pub struct SwebenchInstance {
    instance_id: String,
    repo: String,
    /// The SHA of the instance branch's head: the bug, F2P tests removed.
    base_commit: String,
    /// The fix: the reverse of the bug.
    patch: String,
    /// Restores the removed F2P tests.
    test_patch: String,
    problem_statement: String,
    hints_text: String,
    created_at: String,
    version: String,
    /// The clean commit.
    environment_setup_commit: String,
    /// JSON-encoded lists, as in SWE-bench's datasets.
    FAIL_TO_PASS: String,
    PASS_TO_PASS: String,
    image_name: String,
}

/// What an export wrote.
#[derive(Debug, Default)]
pub struct ExportSummary {
    /// Instances written.
    pub instances: usize,
    /// The spec module.
    pub spec: String,
}

/// The mirror of a repository under `out`.
fn mirror_of(out: &Path, repo_name: &str) -> Result<Mirror, Error> {
    let path = out.join("mirrors").join(format!("{repo_name}.git"));
    Mirror::open(&path)
        .map_err(|e| Error::Usage(format!("{}: {e}: run `bugsmith gather` first (or pass --out)", path.display())))
}

/// The SWE-bench form of one instance, read from its mirror.
fn swebench_instance(
    instance: &TaskInstance,
    profile: Option<&Profile>,
    mirror: &Mirror,
) -> Result<SwebenchInstance, Error> {
    let id = &instance.instance_id;
    let base_commit = mirror.commit_id(id).ok_or_else(|| format!("{id}: no branch in the mirror"))?;
    let setup = mirror.commit_id("main").ok_or_else(|| format!("{id}: the mirror has no main"))?;
    let test_patch = mirror.diff(id, &format!("{id}~1")).map_err(|e| format!("{id}: {e}"))?;
    // SWE-bench runs only the files its test patch touches: P2P elsewhere would count as missing.
    let test_files = patch::files_of(&test_patch);
    let pass_to_pass: Vec<&String> = instance
        .pass_to_pass
        .iter()
        .filter(|t| {
            test_files.is_empty()
                || crate::grading::test_location(t).is_some_and(|(file, _)| test_files.contains(&file))
        })
        .collect();
    let list = |items: &[&String]| serde_json::to_string(items).unwrap_or_default();
    Ok(SwebenchInstance {
        instance_id: id.clone(),
        repo: instance.repo.clone(),
        base_commit,
        patch: patch::reverse(&instance.patch),
        test_patch,
        problem_statement: instance.problem_statement.clone(),
        hints_text: String::new(),
        created_at: instance.created_at.clone(),
        version: profile.and_then(|p| p.swebench_version.clone()).unwrap_or_else(|| "1.0".into()),
        environment_setup_commit: setup,
        FAIL_TO_PASS: list(&instance.fail_to_pass.iter().collect::<Vec<_>>()),
        PASS_TO_PASS: list(&pass_to_pass),
        image_name: instance_image(&instance.instance_id, None),
    })
}

/// SWE-bench's image name for an instance: `sweb.eval.<arch>.<id>` (with a namespace,
/// `<namespace>/…` with `__` as `_1776_`).
pub fn instance_image(instance_id: &str, namespace: Option<&str>) -> String {
    let key = format!("sweb.eval.{}.{}:latest", crate::profile::arch(), instance_id.to_lowercase());
    match namespace {
        Some(ns) => format!("{ns}/{key}").replace("__", "_1776_"),
        None => key,
    }
}

/// Writes `output` (JSON Lines) and its spec module `<stem>_spec.py` beside it.
pub fn swebench(
    instances: &[TaskInstance],
    profiles: &BTreeMap<String, Profile>,
    out: &Path,
    output: &Path,
) -> Result<ExportSummary, Error> {
    let mut lines = String::new();
    let mut mirrors: BTreeMap<String, Mirror> = BTreeMap::new();
    let mut specs: BTreeMap<String, (String, &Profile)> = BTreeMap::new();
    for instance in instances {
        let name = instance.repo_name().to_string();
        if !mirrors.contains_key(&name) {
            mirrors.insert(name.clone(), mirror_of(out, &name)?);
        }
        let profile = profiles.get(&name);
        let exported = swebench_instance(instance, profile, &mirrors[&name])?;
        if let Some(profile) = profile {
            specs.insert(instance.repo.clone(), (exported.version.clone(), profile));
        }
        lines.push_str(&serde_json::to_string(&exported).map_err(|e| e.to_string())?);
        lines.push('\n');
    }
    write_atomic(output, lines.as_bytes()).map_err(|e| format!("{}: {e}", output.display()))?;
    let stem = output.file_stem().map_or("swebench".into(), |s| s.to_string_lossy().to_string());
    let spec_path = output.with_file_name(format!("{stem}_spec.py"));
    write_atomic(&spec_path, swebench_spec(&specs).as_bytes()).map_err(|e| format!("{}: {e}", spec_path.display()))?;
    Ok(ExportSummary { instances: instances.len(), spec: spec_path.display().to_string() })
}

/// The Python module that registers the exported repositories with SWE-bench's harness.
fn swebench_spec(specs: &BTreeMap<String, (String, &Profile)>) -> String {
    let mut entries = String::new();
    for (repo, (version, profile)) in specs {
        let parser = if profile.log_parser == LogParser::Unittest { "unittest" } else { "pytest" };
        let test_cmd = match profile.log_parser {
            // SWE-bench's pytest parser reads the `-rA` summary lines (`PASSED <id>`).
            LogParser::Pytest => format!("{} -rA", agent_test_cmd(profile)),
            LogParser::Unittest => agent_test_cmd(profile),
        };
        entries.push_str(&format!(
            "    {}: ({}, {{\"python\": {}, \"test_cmd\": {}}}, {}),\n",
            py(repo),
            py(version),
            py(&profile.python_version),
            py(&test_cmd),
            py(parser)
        ));
    }
    format!(
        r#""""SWE-bench registration for instances exported by bugsmith.

`import` this module in the process that runs `swebench.harness.run_evaluation.main(...)`: it
adds each repository to MAP_REPO_VERSION_TO_SPECS, MAP_REPO_TO_EXT and MAP_REPO_TO_PARSER.
Images are local (`bugsmith export swebench` tags them `sweb.eval.<arch>.<instance_id>` and
`<org>/sweb.eval.<arch>.<id with __ as _1776_>`): with `namespace=<org>` nothing is pulled or
built; with `namespace=None` call `prepare_local_images(dataset)` first, which tags the same
images under the base and environment keys SWE-bench checks, so it builds nothing either.
The test command runs the files the test patch touches (SWE-bench appends them), so each
instance's PASS_TO_PASS holds only tests of those files.
"""

import json
import re

from swebench.harness.constants import MAP_REPO_TO_EXT, MAP_REPO_VERSION_TO_SPECS
from swebench.harness.log_parsers import MAP_REPO_TO_PARSER
from swebench.harness.log_parsers.python import parse_log_pytest

{unittest}

def parse_log_unittest_bugsmith(log, test_spec):
    return parse_unittest_log(log)


# repo: (version, spec, log parser)
SPECS = {{
{entries}}}


def register():
    for repo, (version, spec, parser) in SPECS.items():
        MAP_REPO_VERSION_TO_SPECS.setdefault(repo, {{}})[version] = dict(spec)
        MAP_REPO_TO_EXT[repo] = "py"
        MAP_REPO_TO_PARSER[repo] = parse_log_pytest if parser == "pytest" else parse_log_unittest_bugsmith


def prepare_local_images(dataset_path):
    """For namespace=None: tag each instance image under the base and env keys SWE-bench checks."""
    import docker
    from swebench.harness.test_spec.test_spec import make_test_spec

    client = docker.from_env()
    with open(dataset_path) as f:
        instances = [json.loads(line) for line in f if line.strip()]
    for instance in instances:
        spec = make_test_spec(instance, namespace=None)
        image = client.images.get(spec.instance_image_key)
        for key in (spec.base_image_key, spec.env_image_key):
            repository, tag = key.rsplit(":", 1)
            image.tag(repository, tag)


register()
"#,
        unittest = UNITTEST_PARSER,
    )
}

/// Builds SWE-bench's per-instance images from each repository's agent image: `/testbed` at
/// the instance branch. Returns how many were made (instances without an agent image are
/// skipped with a message).
pub fn swebench_images(
    backend: &DockerBackend,
    instances: &[TaskInstance],
    profiles: &BTreeMap<String, Profile>,
) -> Result<usize, Error> {
    let mut built = 0;
    for instance in instances {
        let Some(profile) = profiles.get(instance.repo_name()) else {
            eprintln!("  {}: no profile, no image", instance.instance_id);
            continue;
        };
        if !backend.has_image(&profile.image_name) {
            return Err(Error::Usage(format!(
                "no agent image {}: run `bugsmith gather` after validating with --backend docker",
                profile.image_name
            )));
        }
        let tags =
            [instance_image(&instance.instance_id, None), instance_image(&instance.instance_id, Some(profile.org()))];
        let script = format!("cd /testbed && git checkout -q {}", shell_quote(&instance.instance_id));
        backend.derive_image(&profile.image_name, &script, &tags).map_err(|e| e.to_string())?;
        built += 1;
    }
    Ok(built)
}

/// A function-level task.
#[derive(Clone, Debug, Serialize)]
#[allow(non_snake_case)]
pub struct FunctionTask {
    instance_id: String,
    repo: String,
    image_name: String,
    /// The file and the function's dotted name.
    file: String,
    function: String,
    /// The `def` line(s).
    signature: String,
    /// The docstring's text, empty when it has none.
    docstring: String,
    /// The whole file with the function's body replaced by `pass` (the docstring stays).
    context: String,
    /// The function as the clean code has it.
    reference: String,
    FAIL_TO_PASS: Vec<String>,
    PASS_TO_PASS: Vec<String>,
}

/// What an export of function tasks wrote.
#[derive(Debug, Default)]
pub struct FunctionsSummary {
    /// Instances read.
    pub instances: usize,
    /// Tasks written (instances that change exactly one function).
    pub tasks: usize,
}

fn function_task(instance: &TaskInstance, mirror: &Mirror) -> Option<FunctionTask> {
    let changes = patch::changes_of(&instance.patch);
    let [change] = changes.as_slice() else { return None };
    let file = SourceFile::parse(&change.path, mirror.main_file(&change.path)?).ok()?;
    let mut touched: Vec<usize> = Vec::new();
    for line in &change.old_lines {
        let innermost = file
            .entities()
            .iter()
            .enumerate()
            .filter(|(_, e)| e.kind == EntityKind::Function && e.line_start <= *line && *line <= e.line_end)
            .min_by_key(|(_, e)| e.line_end - e.line_start)
            .map(|(i, _)| i);
        match innermost {
            Some(i) if !touched.contains(&i) => touched.push(i),
            Some(_) => {}
            None => return None,
        }
    }
    let [index] = touched.as_slice() else { return None };
    let entity = &file.entities()[*index];
    let stub = patch::stub(&file, entity.node)?;
    let text = file.text();
    let context = patch::apply(text, &[stub], (0, text.len() as u32)).ok()?;
    let docstring = patch::docstring(&file, entity.node).map(|d| file.node_text(d).to_string()).unwrap_or_default();
    // The `def` line(s) as written: from the keyword to the colon before the body.
    let keyword =
        (file.lines().line_start(entity.line_start) as usize + entity.indent.len()).max(entity.start as usize);
    let body =
        file.tree().children_with_role(entity.node, "body").next().map(|b| file.tree().node(b).start as usize)?;
    let header = text[keyword..body].trim_end();
    let signature = header.rfind(':').map_or(header, |colon| &header[..=colon]).to_string();
    Some(FunctionTask {
        instance_id: instance.instance_id.clone(),
        repo: instance.repo.clone(),
        image_name: instance.image_name.clone(),
        file: change.path.clone(),
        function: entity.qualified_name.clone(),
        signature,
        docstring,
        context,
        reference: text[entity.start as usize..entity.end as usize].to_string(),
        FAIL_TO_PASS: instance.fail_to_pass.clone(),
        PASS_TO_PASS: instance.pass_to_pass.clone(),
    })
}

/// Writes function-level tasks for the instances that change exactly one function.
pub fn functions(instances: &[TaskInstance], out: &Path, output: &Path) -> Result<FunctionsSummary, Error> {
    let mut summary = FunctionsSummary { instances: instances.len(), ..FunctionsSummary::default() };
    let mut mirrors: BTreeMap<String, Mirror> = BTreeMap::new();
    let mut lines = String::new();
    for instance in instances {
        let name = instance.repo_name().to_string();
        if !mirrors.contains_key(&name) {
            mirrors.insert(name.clone(), mirror_of(out, &name)?);
        }
        if let Some(task) = function_task(instance, &mirrors[&name]) {
            lines.push_str(&serde_json::to_string(&task).map_err(|e| e.to_string())?);
            lines.push('\n');
            summary.tasks += 1;
        }
    }
    write_atomic(output, lines.as_bytes()).map_err(|e| format!("{}: {e}", output.display()))?;
    Ok(summary)
}

/// `bugsmith export swesmith-profile`.
pub fn swesmith_profile_command(ctx: &Context, profile: &Path, output: &Path) -> Outcome {
    let profile = ctx.profile(profile)?;
    write_swesmith_profile(&profile, output)?;
    println!("wrote {} (register it with SWE-smith: `import` the file before running its harness)", output.display());
    Ok(crate::EXIT_OK)
}

/// `bugsmith export swebench`.
pub fn swebench_command(
    instances: &Path,
    output: &Path,
    profiles: &[std::path::PathBuf],
    out: &Path,
    images: bool,
) -> Outcome {
    let list = crate::records::read_instances(instances)?;
    let (profiles, problems) = crate::context::find_profiles(profiles, out, instances);
    for problem in &problems {
        eprintln!("  {problem}");
    }
    let summary = swebench(&list, &profiles, out, output)?;
    println!("{} instances -> {} (spec: {})", summary.instances, output.display(), summary.spec);
    if images {
        let backend = DockerBackend::connect(Default::default())?;
        let built = swebench_images(&backend, &list, &profiles)?;
        println!("{built} per-instance images tagged sweb.eval.{}.<instance_id>", crate::profile::arch());
    }
    Ok(crate::EXIT_OK)
}

/// `bugsmith export functions`.
pub fn functions_command(instances: &Path, output: &Path, out: &Path) -> Outcome {
    let list = crate::records::read_instances(instances)?;
    let summary = functions(&list, out, output)?;
    println!("{} function tasks from {} instances -> {}", summary.tasks, summary.instances, output.display());
    Ok(crate::EXIT_OK)
}
