//! Profiles: how to install and test a repository at a commit (SWE-smith's `RepoProfile`), as
//! YAML. `Profile::detect` writes one for standard layouts without any language model.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::patch::sha256_hex8;

/// A private checkout of a source.
#[derive(Clone, Debug)]
pub struct Checkout {
    /// The checkout's directory (never the user's own).
    pub root: PathBuf,
    /// `owner__repo.<commit8>`.
    pub repo_name: String,
    /// Owner part (`pypi` for sdists, `local` for directories).
    pub owner: String,
    /// Repository part.
    pub repo: String,
    /// Full commit id.
    pub commit: String,
}

/// The default base image (built locally by `.ci/base-image.sh`).
pub const DEFAULT_BASE_IMAGE: &str = "bugsmith-base:bookworm";

/// How test output is read.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogParser {
    /// pytest: a JUnit XML side file, the verbose text as a fallback.
    #[default]
    Pytest,
    /// unittest's verbose text (`test_x (module.Class) ... ok`).
    Unittest,
}

/// A repository profile.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// The source, as `gen` takes it (directory, `URL[@rev]`, `pypi:NAME==VERSION`).
    pub source: String,
    /// The checkout's full commit id (a content hash for directories and sdists).
    pub commit: String,
    /// `owner__repo.<commit8>`; checked against the source on load.
    pub repo_name: String,
    /// The image agents run in: SWE-smith's `<org>/swesmith.<arch>.<owner>_1776_<repo>.<commit8>`
    /// (lower case). Validation uses an image of its own ([`Profile::validation_image`]).
    pub image_name: String,
    /// SWE-smith's `org_gh` and `org_dh`: instances' `repo` is `<org>/<repo_name>`. Profiles
    /// without it keep the image name they store and use `bugsmith`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    /// Python version: the local backend uses `python<version>` when present; Docker uses the
    /// base image's `python3`.
    #[serde(default = "default_python")]
    pub python_version: String,
    /// Shell commands run in the checkout, in a fresh virtualenv, to install it.
    #[serde(default)]
    pub install: Vec<String>,
    /// The test command, run in the checkout.
    pub test_cmd: String,
    /// How its output is read.
    #[serde(default)]
    pub log_parser: LogParser,
    /// Seconds a candidate's test run may take; default `max(20, 5 × baseline)`.
    #[serde(default)]
    pub timeout: Option<u64>,
    /// Seconds the clean baseline run may take.
    #[serde(default = "default_timeout_ref")]
    pub timeout_ref: u64,
    /// Clean runs of the baseline (tests whose outcome differs are flaky).
    #[serde(default = "default_baseline_runs")]
    pub baseline_runs: u32,
    /// Docker base image.
    #[serde(default = "default_base_image")]
    pub base_image: String,
    /// Path prefixes `gen` never mutates (besides SWE-smith's test-path rule).
    #[serde(default)]
    pub exclude_paths: Vec<String>,
    /// Environment variables for installs and test runs.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// The `version` of the repository's instances in a SWE-bench export (default `1.0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swebench_version: Option<String>,
    /// Memory, processes, file size and temporary space for the tests (both backends).
    #[serde(default, skip_serializing_if = "LimitSettings::is_empty")]
    pub limits: LimitSettings,
}

/// Resource limits for a worker's tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of memory (temporary files in memory included).
    pub memory: u64,
    /// Processes and threads.
    pub pids: u64,
    /// Bytes one file may grow to.
    pub file_size: u64,
    /// Bytes of the per-candidate temporary space (`/tmp`, `$HOME`, `$TMPDIR`).
    pub tmp: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits { memory: 4 << 30, pids: 1024, file_size: 1 << 30, tmp: 1 << 30 }
    }
}

/// Limits as a profile or the command line gives them (`4g`, `512m`, or bytes); unset ones
/// fall back to the next source, then to [`Limits::default`].
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LimitSettings {
    /// Memory.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "size_text")]
    pub memory: Option<u64>,
    /// Processes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids: Option<u64>,
    /// Largest file.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "size_text")]
    pub file_size: Option<u64>,
    /// Temporary space.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "size_text")]
    pub tmp: Option<u64>,
}

impl LimitSettings {
    /// Nothing set.
    pub fn is_empty(&self) -> bool {
        *self == LimitSettings::default()
    }

    /// These settings, then `fallback`'s, then the defaults.
    pub fn resolve(&self, fallback: &LimitSettings) -> Limits {
        let default = Limits::default();
        Limits {
            memory: self.memory.or(fallback.memory).unwrap_or(default.memory),
            pids: self.pids.or(fallback.pids).unwrap_or(default.pids),
            file_size: self.file_size.or(fallback.file_size).unwrap_or(default.file_size),
            tmp: self.tmp.or(fallback.tmp).unwrap_or(default.tmp),
        }
    }
}

/// A size that does not read as one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    /// Not a number.
    #[error("`{0}` is not a size (like 4g, 512m or 1048576)")]
    NotANumber(String),
    /// An unknown unit.
    #[error("`{0}` has an unknown unit (k, m, g or t)")]
    Unit(String),
}

/// `4g`, `512m`, `64k`, `1.5GiB` or a number of bytes.
pub fn parse_size(text: &str) -> Result<u64, SizeError> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().map_err(|_| SizeError::NotANumber(text.to_string()))?;
    let scale: u64 = match unit.trim().to_ascii_lowercase().trim_end_matches("ib").trim_end_matches('b') {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        _ => return Err(SizeError::Unit(text.to_string())),
    };
    Ok((number * scale as f64) as u64)
}

mod size_text {
    use serde::{Deserialize, Deserializer, Serializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Given {
        Bytes(u64),
        Text(String),
    }

    pub fn serialize<S: Serializer>(value: &Option<u64>, serializer: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(bytes) => serializer.serialize_u64(*bytes),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
        match Option::<Given>::deserialize(deserializer)? {
            None => Ok(None),
            Some(Given::Bytes(bytes)) => Ok(Some(bytes)),
            Some(Given::Text(text)) => super::parse_size(&text).map(Some).map_err(serde::de::Error::custom),
        }
    }
}

fn default_python() -> String {
    "3".into()
}
fn default_timeout_ref() -> u64 {
    900
}
fn default_baseline_runs() -> u32 {
    2
}
fn default_base_image() -> String {
    DEFAULT_BASE_IMAGE.into()
}

/// A profile could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ProfileError {
    /// The file.
    pub path: String,
    /// What is wrong (with the line where the YAML parser knows it).
    pub message: String,
}

/// bugsmith's pytest plugin (test selection and per-test coverage), installed into every
/// environment as `bugsmith_pytest`.
pub const PYTEST_PLUGIN: &str = include_str!("pytest_plugin.py");

/// The organisation instances and images are named under when a profile names none.
pub const DEFAULT_ORG: &str = "bugsmith";

/// The machine's architecture as SWE-smith and SWE-bench write it in image names.
pub fn arch() -> &'static str {
    if cfg!(target_arch = "aarch64") { "arm64" } else { "x86_64" }
}

/// SWE-smith's image name: `<org>/swesmith.<arch>.<owner>_1776_<repo>.<commit8>`, lower case.
pub fn image_name(org: &str, owner: &str, repo: &str, commit: &str) -> String {
    format!("{org}/swesmith.{}.{owner}_1776_{repo}.{}", arch(), &commit[..8.min(commit.len())]).to_lowercase()
}

impl Profile {
    /// Parses a profile's text (`path` for messages) and checks its derived names.
    pub fn parse(path: &str, text: &str) -> Result<Profile, ProfileError> {
        let error = |message: String| ProfileError { path: path.to_string(), message };
        let profile: Profile = serde_yaml::from_str(text).map_err(|e| error(e.to_string()))?;
        if profile.test_cmd.trim().is_empty() {
            return Err(error("test_cmd is empty".into()));
        }
        if !profile.repo_name.ends_with(&format!(".{}", &profile.commit[..8.min(profile.commit.len())])) {
            return Err(error(format!(
                "repo_name `{}` does not end with the commit's first 8 characters (line {})",
                profile.repo_name,
                crate::recipe::line_of(text, "repo_name")
            )));
        }
        Ok(profile)
    }

    /// Reads a profile file.
    pub fn load(path: &Path) -> Result<Profile, ProfileError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ProfileError { path: path.display().to_string(), message: e.to_string() })?;
        Profile::parse(&path.display().to_string(), &text)
    }

    /// SWE-smith's `org_gh` / `org_dh`.
    pub fn org(&self) -> &str {
        self.org.as_deref().unwrap_or(DEFAULT_ORG)
    }

    /// The instances' `repo`: `<org>/<repo_name>` (SWE-smith's `mirror_name`).
    pub fn mirror_name(&self) -> String {
        format!("{}/{}", self.org(), self.repo_name)
    }

    /// Owner and repository parts of `repo_name` (`owner__repo.<commit8>`).
    pub fn owner_and_repo(&self) -> (&str, &str) {
        let stem = self.repo_name.rsplit_once('.').map_or(self.repo_name.as_str(), |(s, _)| s);
        stem.split_once("__").unwrap_or(("local", stem))
    }

    /// The image validation workers run in: the installed state committed in `/testbed`, which
    /// its reset scheme needs. Agents get [`Profile::image_name`] instead, built on it.
    pub fn validation_image(&self) -> String {
        let name: String = self
            .repo_name
            .to_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '.' { c } else { '-' })
            .collect();
        format!("bugsmith-validation/{name}:{}", self.env_hash())
    }

    /// Hash of everything that shapes the environment: rebuild when it changes.
    pub fn env_hash(&self) -> String {
        // bugsmith's own tooling (coverage.py and its pytest plugin) is part of every environment.
        let tooling = sha256_hex8(PYTEST_PLUGIN);
        let key =
            serde_json::json!([self.commit, self.python_version, self.install, self.base_image, self.env, tooling]);
        sha256_hex8(&key.to_string())
    }

    /// Environment for a test run: the profile's variables, and for pytest `PYTEST_ADDOPTS`
    /// asking for the JUnit side file and for collection to go on past a module that fails to
    /// import (the test command itself is left as written, pipes and all).
    pub fn test_env(&self, junit_path: &str) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = self.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        if self.log_parser == LogParser::Pytest {
            // bugsmith's plugin (in every environment bugsmith builds) in every run: each test
            // starts from the same random state, and selection and coverage ask it for more.
            let ours = format!(
                "-p no:cacheprovider -p bugsmith_pytest -o junit_family=xunit1 --junitxml={junit_path} --continue-on-collection-errors"
            );
            let addopts = match self.env.get("PYTEST_ADDOPTS") {
                Some(theirs) => format!("{theirs} {ours}"),
                None => ours,
            };
            env.retain(|(k, _)| k != "PYTEST_ADDOPTS");
            env.push(("PYTEST_ADDOPTS".into(), addopts));
        }
        env
    }

    /// What identifies a test run's setup, for result keys.
    pub fn test_setup(&self) -> String {
        format!("{}\n{:?}", self.test_cmd, self.test_env("JUNIT"))
    }

    /// The YAML text, with a header comment.
    pub fn to_yaml(&self) -> String {
        let body = serde_yaml::to_string(self).unwrap_or_default();
        format!("# bugsmith profile: how to install and test {} (edit freely; see README)\n{body}", self.repo_name)
    }

    /// A profile for a checkout of a standard Python layout, found without any language model:
    /// extras and dependency groups named test/tests/testing/dev in pyproject.toml, setup.cfg
    /// or setup.py, requirements files for tests, and whether the tests use pytest.
    pub fn detect(source: &str, checkout: &Checkout, org: Option<&str>) -> Profile {
        let root = &checkout.root;
        let read = |name: &str| std::fs::read_to_string(root.join(name)).unwrap_or_default();
        let pyproject = read("pyproject.toml");
        let setup_cfg = read("setup.cfg");
        let setup_py = read("setup.py");
        let installable = !pyproject.is_empty() || !setup_py.is_empty() || !setup_cfg.is_empty();
        let mut install = Vec::new();
        let manifests = Manifests::read(&pyproject, &setup_cfg, &setup_py, &read("tox.ini"));
        let extra = manifests.test_extra();
        if installable {
            install.push(match extra {
                Some(name) => format!("python -m pip install -e '.[{name}]'"),
                None => "python -m pip install -e .".to_string(),
            });
        }
        for file in [
            "requirements-test.txt",
            "requirements-tests.txt",
            "requirements_test.txt",
            "test-requirements.txt",
            "test_requirements.txt",
            "requirements-dev.txt",
            "requirements_dev.txt",
            "dev-requirements.txt",
            "requirements/test.txt",
            "requirements/tests.txt",
            "requirements/dev.txt",
        ] {
            if root.join(file).is_file() {
                install.push(format!("python -m pip install -r {file}"));
            }
        }
        if let Some(group) =
            ["test", "tests", "dev"].into_iter().find(|g| manifests.dependency_groups.iter().any(|d| d == g))
        {
            // `--group` needs pip 25.1 or newer.
            install.push("python -m pip install --upgrade pip".into());
            install.push(format!("python -m pip install --group {group}"));
        }
        for requirements in &manifests.tox_requirement_files {
            if root.join(requirements).is_file()
                && !install.iter().any(|step| step.ends_with(&format!("-r {requirements}")))
            {
                install.push(format!("python -m pip install -r {requirements}"));
            }
        }
        if !manifests.tox_deps.is_empty() {
            let quoted: Vec<String> = manifests.tox_deps.iter().map(|d| format!("'{d}'")).collect();
            install.push(format!("python -m pip install {}", quoted.join(" ")));
        }
        install.push("python -m pip install pytest".into());
        // tox and nox files say how the project runs its own tests.
        let runner_hints = format!("{}\n{}", read("tox.ini"), read("noxfile.py"));
        let pytest = uses_pytest(root, &pyproject, &setup_cfg) || runner_hints.contains("pytest");
        let (test_cmd, log_parser) = if !pytest && root.join("test.py").is_file() {
            ("python test.py --verbose".to_string(), LogParser::Unittest)
        } else if !pytest && runner_hints.contains("unittest") {
            ("python -m unittest --verbose".to_string(), LogParser::Unittest)
        } else {
            ("python -m pytest --disable-warnings --color=no --tb=no --verbose".to_string(), LogParser::Pytest)
        };
        Profile {
            source: source.to_string(),
            commit: checkout.commit.clone(),
            repo_name: checkout.repo_name.clone(),
            image_name: image_name(org.unwrap_or(DEFAULT_ORG), &checkout.owner, &checkout.repo, &checkout.commit),
            org: Some(org.unwrap_or(DEFAULT_ORG).to_string()),
            python_version: python_version(),
            install,
            test_cmd,
            log_parser,
            timeout: None,
            timeout_ref: default_timeout_ref(),
            baseline_runs: default_baseline_runs(),
            base_image: default_base_image(),
            exclude_paths: Vec::new(),
            env: BTreeMap::new(),
            swebench_version: None,
            limits: LimitSettings::default(),
        }
    }
}

/// `python3`'s major.minor on this machine.
fn python_version() -> String {
    std::process::Command::new("python3")
        .args(["-c", "import sys; print('%d.%d' % sys.version_info[:2])"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(default_python)
}

/// One section of an INI file (Python's configparser format: multi-line values), by name.
fn ini_section(text: &str, name: &str) -> Option<std::collections::HashMap<String, Option<String>>> {
    let mut ini = configparser::ini::Ini::new_cs();
    ini.set_multiline(true);
    ini.read(text.to_string()).ok()?.remove(name)
}

/// What the packaging files say about test dependencies, read with real parsers: extras
/// (`[project.optional-dependencies]`, also as dotted keys, Poetry's extras and groups,
/// setup.cfg's `[options.extras_require]`, setup.py's `extras_require`), PEP 735 dependency
/// groups, and tox's `[testenv]` `extras`, `deps` and `-r` files.
#[derive(Debug, Default)]
struct Manifests {
    extras: Vec<String>,
    dependency_groups: Vec<String>,
    tox_extras: Vec<String>,
    tox_deps: Vec<String>,
    tox_requirement_files: Vec<String>,
}

impl Manifests {
    fn read(pyproject: &str, setup_cfg: &str, setup_py: &str, tox_ini: &str) -> Manifests {
        let mut found = Manifests::default();
        if let Ok(toml) = pyproject.parse::<toml::Table>() {
            let keys = |value: Option<&toml::Value>| -> Vec<String> {
                value.and_then(toml::Value::as_table).map(|t| t.keys().cloned().collect()).unwrap_or_default()
            };
            let project = toml.get("project");
            found.extras.extend(keys(project.and_then(|p| p.get("optional-dependencies"))));
            let poetry = toml.get("tool").and_then(|t| t.get("poetry"));
            found.extras.extend(keys(poetry.and_then(|p| p.get("extras"))));
            found.dependency_groups.extend(keys(toml.get("dependency-groups")));
        }
        if let Some(extras) = ini_section(setup_cfg, "options.extras_require") {
            found.extras.extend(extras.keys().cloned());
        }
        if let Some(testenv) = ini_section(tox_ini, "testenv") {
            // Values are lists, one item per line (or comma-separated), `#` starting a comment.
            let list = |key: &str| -> Vec<String> {
                testenv
                    .get(key)
                    .cloned()
                    .flatten()
                    .unwrap_or_default()
                    .split(['\n', ','])
                    .map(|l| l.split('#').next().unwrap_or("").trim().to_string())
                    .filter(|l| !l.is_empty())
                    .collect()
            };
            found.tox_extras = list("extras");
            for dep in list("deps") {
                if let Some(file) = dep.strip_prefix("-r").map(str::trim) {
                    found.tox_requirement_files.push(file.to_string());
                } else if !dep.contains('{') && !dep.starts_with(['-', '.']) {
                    found.tox_deps.push(dep);
                }
            }
        }
        if setup_py.contains("extras_require") {
            for name in ["test", "tests", "testing", "dev"] {
                if setup_py.contains(&format!("'{name}'")) || setup_py.contains(&format!("\"{name}\"")) {
                    found.extras.push(name.to_string());
                }
            }
        }
        found
    }

    /// The extra to install the tests with: one tox installs, else test/tests/testing/dev.
    fn test_extra(&self) -> Option<&str> {
        let known = |name: &str| self.extras.iter().any(|e| e == name);
        self.tox_extras
            .iter()
            .map(String::as_str)
            .find(|e| known(e))
            .or_else(|| ["test", "tests", "testing", "dev"].into_iter().find(|name| known(name)))
    }
}

fn uses_pytest(root: &Path, pyproject: &str, setup_cfg: &str) -> bool {
    pyproject.contains("pytest")
        || setup_cfg.contains("pytest")
        || ["pytest.ini", "conftest.py", "tests/conftest.py", "tox.ini"]
            .iter()
            .any(|f| std::fs::read_to_string(root.join(f)).is_ok_and(|t| *f != "tox.ini" || t.contains("pytest")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_read_sizes_and_fall_back_from_flags_to_profile_to_defaults() {
        assert_eq!(parse_size("4g"), Ok(4 << 30));
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("1.5k"), Ok(1536));
        assert!(parse_size("lots").is_err() && parse_size("3x").is_err());
        let profile: LimitSettings = serde_yaml::from_str("memory: 2g\npids: 64\n").unwrap();
        assert_eq!(profile.memory, Some(2 << 30));
        let flags = LimitSettings { pids: Some(10), ..LimitSettings::default() };
        let limits = flags.resolve(&profile);
        assert_eq!((limits.memory, limits.pids, limits.file_size), (2 << 30, 10, Limits::default().file_size));
        assert!(serde_yaml::from_str::<LimitSettings>("memroy: 1g\n").is_err(), "unknown keys are errors");
    }

    #[test]
    fn extras_are_found_in_pyproject_setup_cfg_and_setup_py() {
        let extra = |pyproject: &str, setup_cfg: &str, setup_py: &str, tox: &str| {
            Manifests::read(pyproject, setup_cfg, setup_py, tox).test_extra().map(str::to_string)
        };
        let pyproject = "[project]\nname = 'x'\n[project.optional-dependencies]\ndocs = ['sphinx']\ntests = [\n  'pytest',\n]\n[tool.x]\ntest = 1\n";
        assert_eq!(extra(pyproject, "", "", "").as_deref(), Some("tests"));
        let dotted = "[project]\nname = 'x'\noptional-dependencies.tests = ['freezegun', 'pytest', 'pytest-cov']\n";
        assert_eq!(extra(dotted, "", "", "").as_deref(), Some("tests"), "dotted keys");
        let inline = "[project]\nname = 'x'\noptional-dependencies = { testing = ['pytest'] }\n";
        assert_eq!(extra(inline, "", "", "").as_deref(), Some("testing"), "inline tables");
        assert_eq!(extra("", "[options.extras_require]\ntesting =\n    pytest\n", "", "").as_deref(), Some("testing"));
        assert_eq!(extra("", "", "setup(extras_require={'dev': ['pytest']})", "").as_deref(), Some("dev"));
        assert_eq!(Manifests::read("[dependency-groups]\ntest = ['pytest']\n", "", "", "").dependency_groups, ["test"]);
        // tox says which extra the tests use, and what else they need.
        let tox = "[tox]\nenvlist = py3\n[testenv]\nextras =\n    docs\n    qa\ndeps =\n    freezegun\n    -rrequirements/ci.txt\n    {toxinidir}/x\ncommands = pytest\n";
        let cfg = "[options.extras_require]\nqa = pytest\ndev = black\n";
        let found = Manifests::read("", cfg, "", tox);
        assert_eq!(found.test_extra(), Some("qa"));
        assert_eq!(
            (found.tox_deps.as_slice(), found.tox_requirement_files.as_slice()),
            (&["freezegun".to_string()][..], &["requirements/ci.txt".to_string()][..])
        );
        assert_eq!(extra("not toml [", "", "", "").as_deref(), None, "a broken file is no extra");
    }

    #[test]
    fn unknown_keys_and_bad_names_are_errors() {
        let good = "source: pypi:x==1\ncommit: 0123456789abcdef\nrepo_name: pypi__x.01234567\nimage_name: i\ntest_cmd: pytest\n";
        assert!(Profile::parse("p.yaml", good).is_ok());
        let unknown = format!("{good}tset_cmd: x\n");
        let err = Profile::parse("p.yaml", &unknown).unwrap_err().to_string();
        assert!(err.contains("unknown field `tset_cmd`") && err.contains("line 6"), "{err}");
        let bad = good.replace("pypi__x.01234567", "pypi__x.ffffffff");
        assert!(Profile::parse("p.yaml", &bad).unwrap_err().to_string().contains("line 3"));
    }

    #[test]
    fn image_names_follow_swe_smith() {
        let name = image_name("bugsmith", "Mewwts", "addict", "75284f9593dfb929");
        assert_eq!(name, format!("bugsmith/swesmith.{}.mewwts_1776_addict.75284f95", arch()));
    }
}
