//! `campaign --emit slurm|k8s DIR`: jobs that run a campaign's shards on a cluster and merge
//! them. Each shard runs `bugsmith campaign FILE --shard K/N --out <shared_dir>/shard-K` with the
//! local backend (`--no-sandbox` where the nodes do not allow namespaces); the merge writes
//! `<shared_dir>/merged`.
//!
//! Slurm: `campaign.sbatch` (an array, one task per shard), `merge.sbatch`, and `submit.sh`,
//! which submits the array and the merge with `--dependency=afterany` (a shard whose sources
//! partly failed exits 3 and must not stop the merge). Kubernetes: `campaign.yaml` with a
//! ConfigMap holding the campaign file, an Indexed Job (one completion per shard, two attempts
//! each) and a merge Job that waits until every shard has finished or failed both attempts
//! (at most `emit.merge_wait`); outputs on a PersistentVolumeClaim. Either merge joins the
//! shards that finished and exits 3 naming the others.

use std::path::Path;

use crate::context::{Error, Outcome, io};
use crate::settings::EmitKind;

use super::file::Campaign;

/// Writes the jobs under `dir`.
pub fn command(campaign: &Campaign, file: &Path, kind: EmitKind, dir: &Path) -> Outcome {
    let shared = campaign.emit.shared_dir.clone().ok_or_else(|| {
        Error::Usage("--emit needs `emit: {shared_dir: PATH}` in the campaign file: where every shard writes".into())
    })?;
    let shards = campaign.emit.shards.unwrap_or(2).max(1);
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let file = std::path::absolute(file).map_err(io(file))?;
    let written = match kind {
        EmitKind::Slurm => slurm(campaign, &file, &shared, shards, dir)?,
        EmitKind::K8s => kubernetes(campaign, &file, &shared, shards, dir)?,
    };
    for path in &written {
        println!("wrote {}", path.display());
    }
    println!(
        "{} shards of {} sources; outputs under {shared}/shard-K, merged into {shared}/merged",
        shards,
        campaign.sources.len()
    );
    Ok(crate::EXIT_OK)
}

/// A value quoted for the shell.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// A shell script that merges the shards that finished (`campaign.finished`) into
/// `<shared>/merged`, names those that did not and then exits 3; 1 if none finished.
fn merge_finished(bugsmith: &str, shared: &str, shards: usize) -> String {
    let q = shell_quote(shared);
    format!(
        "set --
missing=''
k=1
while [ \"$k\" -le {shards} ]; do
  \
         if [ -f {q}/shard-\"$k\"/campaign.finished ]; then set -- \"$@\" {q}/shard-\"$k\"; else missing=\"$missing $k\"; fi
  \
         k=$((k + 1))
done
\
         if [ \"$#\" -eq 0 ]; then echo \"bugsmith: none of the {shards} shards finished: nothing to merge\" >&2; exit 1; fi
\
         {bugsmith} merge \"$@\" --out {q}/merged || exit \"$?\"
\
         if [ -n \"$missing\" ]; then echo \"bugsmith: shard(s)$missing of {shards} did not finish; merged the other $#\" >&2; exit 3; fi
"
    )
}

/// Where pods find the campaign file (a ConfigMap volume).
const CONFIG_DIR: &str = "/etc/bugsmith";
const CONFIG_FILE: &str = "/etc/bugsmith/campaign.yaml";

/// How long the Kubernetes merge waits for shards that have not ended, by default.
const DEFAULT_MERGE_WAIT: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Attempts a Kubernetes shard gets (`backoffLimitPerIndex` + 1).
const K8S_ATTEMPTS: usize = 2;

/// A shell script that waits until every shard has finished or failed all its attempts (the
/// shard command counts them in `attempts.failed`), or `wait` has passed (a pod lost with its
/// node writes nothing).
fn wait_for_shards(shared: &str, shards: usize, wait: std::time::Duration) -> String {
    let q = shell_quote(shared);
    let seconds = wait.as_secs().max(1);
    let poll = seconds.clamp(1, 30);
    format!(
        "deadline=$(( $(date +%s) + {seconds} ))
while :; do
  ended=0
  k=1
  while [ \"$k\" -le {shards} ]; do
    \
         failed=$(cat {q}/shard-\"$k\"/attempts.failed 2>/dev/null | wc -l)
    \
         if [ -f {q}/shard-\"$k\"/campaign.finished ] || [ \"$failed\" -ge {K8S_ATTEMPTS} ]; then ended=$((ended + 1)); fi
    \
         k=$((k + 1))
  done
  [ \"$ended\" -ge {shards} ] && exit 0
  \
         if [ \"$(date +%s)\" -ge \"$deadline\" ]; then echo \"bugsmith: waited {seconds} s, $ended of {shards} shards ended: merging those that finished\" >&2; exit 0; fi
  \
         sleep {poll}
done
"
    )
}

fn write(path: &Path, text: &str, executable: bool) -> Result<std::path::PathBuf, Error> {
    crate::files::write_atomic(path, text.as_bytes()).map_err(io(path))?;
    if executable {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).map_err(io(path))?;
    }
    Ok(path.to_path_buf())
}

fn slurm(
    campaign: &Campaign,
    file: &Path,
    shared: &str,
    shards: usize,
    dir: &Path,
) -> Result<Vec<std::path::PathBuf>, Error> {
    let emit = &campaign.emit;
    let bugsmith = emit.bugsmith.as_deref().unwrap_or("bugsmith");
    let name = &campaign.name;
    let mut header = String::new();
    let mut option = |key: &str, value: Option<String>| {
        if let Some(value) = value {
            header.push_str(&format!("#SBATCH --{key}={value}\n"));
        }
    };
    option("partition", emit.partition.clone());
    option("cpus-per-task", emit.cpus.map(|c| c.to_string()));
    option("mem", emit.memory.clone());
    option("time", emit.time_limit.clone());
    let sandbox = if emit.sandbox == Some(false) { " --no-sandbox" } else { "" };
    let jobs = emit.cpus.map_or(String::new(), |c| format!(" -j {c}"));
    let array = format!(
        "#!/bin/bash\n# One shard of campaign {name} per array task (written by bugsmith campaign --emit slurm).\n\
         #SBATCH --job-name=bugsmith-{name}\n#SBATCH --array=1-{shards}\n#SBATCH --output={shared}/slurm/%x-%a.out\n{header}\
         set -uo pipefail\nmkdir -p {q_shared}/slurm\n\
         {bugsmith} campaign {file} --shard \"${{SLURM_ARRAY_TASK_ID}}/{shards}\" --out {q_shared}/shard-\"${{SLURM_ARRAY_TASK_ID}}\" --backend local{sandbox}{jobs}\n\
         code=$?\n# 3: some sources failed, the rest are done (the merge still runs).\nif [ \"$code\" -eq 3 ]; then exit 0; fi\nexit \"$code\"\n",
        file = shell_quote(&file.display().to_string()),
        q_shared = shell_quote(shared),
    );
    let merge = format!(
        "#!/bin/bash\n# Joins the shards of campaign {name} that finished (written by bugsmith campaign --emit slurm).\n\
         #SBATCH --job-name=bugsmith-{name}-merge\n#SBATCH --output={shared}/slurm/%x.out\n{partition}\
         set -u\n{}",
        merge_finished(bugsmith, shared, shards),
        partition = emit.partition.as_ref().map_or(String::new(), |p| format!("#SBATCH --partition={p}\n")),
    );
    let submit = format!(
        "#!/bin/bash\n# Submits the shards as an array and the merge after them.\nset -euo pipefail\n\
         cd \"$(dirname \"$0\")\"\n# Slurm opens the jobs' output files before they start.\nmkdir -p {}/slurm\n\
         array=$(sbatch --parsable campaign.sbatch)\n\
         merge=$(sbatch --parsable --dependency=afterany:\"${{array%%;*}}\" merge.sbatch)\n\
         echo \"shards: job ${{array%%;*}}; merge: job ${{merge%%;*}}\"\n",
        shell_quote(shared)
    );
    Ok(vec![
        write(&dir.join("campaign.sbatch"), &array, true)?,
        write(&dir.join("merge.sbatch"), &merge, true)?,
        write(&dir.join("submit.sh"), &submit, true)?,
    ])
}

/// A Kubernetes object name: lowercase letters, digits and `-`.
fn k8s_name(text: &str) -> String {
    let name: String = text.to_lowercase().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
    name.trim_matches('-').chars().take(50).collect()
}

fn kubernetes(
    campaign: &Campaign,
    file: &Path,
    shared: &str,
    shards: usize,
    dir: &Path,
) -> Result<Vec<std::path::PathBuf>, Error> {
    use serde_json::json;
    let emit = &campaign.emit;
    let name = format!("bugsmith-{}", k8s_name(&campaign.name));
    let image = emit.image.clone().unwrap_or_else(|| "bugsmith:latest".into());
    let claim = emit.volume_claim.clone().unwrap_or_else(|| format!("{name}-output"));
    let bugsmith = emit.bugsmith.as_deref().unwrap_or("bugsmith");
    let text = std::fs::read_to_string(file).map_err(io(file))?;
    let mut resources = serde_json::Map::new();
    if let Some(cpus) = emit.cpus {
        resources.insert("cpu".into(), json!(cpus.to_string()));
    }
    if let Some(memory) = &emit.memory {
        resources.insert("memory".into(), json!(memory.replace('G', "Gi").replace("Gii", "Gi")));
    }
    let volumes = json!([
        {"name": "output", "persistentVolumeClaim": {"claimName": claim}},
        {"name": "campaign", "configMap": {"name": format!("{name}-campaign")}},
    ]);
    let mounts = json!([
        {"name": "output", "mountPath": shared},
        {"name": "campaign", "mountPath": CONFIG_DIR, "readOnly": true},
    ]);
    // Pods rarely allow the user namespaces the local sandbox needs.
    let sandbox = if emit.sandbox == Some(true) { "" } else { " --no-sandbox" };
    // A failed attempt is counted, so the merge knows when a shard has none left.
    let shard_command = format!(
        "k=$((JOB_COMPLETION_INDEX + 1)); {bugsmith} campaign {file} --shard \"$k/{shards}\" --out {q}/shard-\"$k\" --backend local{sandbox}; code=$?; [ \"$code\" -eq 3 ] && exit 0; \
         if [ \"$code\" -ne 0 ]; then mkdir -p {q}/shard-\"$k\" && echo \"$code\" >> {q}/shard-\"$k\"/attempts.failed; fi; exit \"$code\"",
        file = shell_quote(CONFIG_FILE),
        q = shell_quote(shared)
    );
    let config = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": format!("{name}-campaign"), "labels": {"app.kubernetes.io/name": "bugsmith"}},
        "data": {"campaign.yaml": text},
    });
    let job = json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/name": "bugsmith"}},
        "spec": {
            "completionMode": "Indexed", "completions": shards, "parallelism": shards, "backoffLimitPerIndex": K8S_ATTEMPTS - 1,
            "template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{
                    "name": "shard", "image": image, "command": ["/bin/sh", "-c", shard_command],
                    "resources": {"requests": resources.clone(), "limits": resources},
                    "volumeMounts": mounts,
                }],
                "volumes": volumes,
            }},
        },
    });
    let wait = wait_for_shards(shared, shards, emit.merge_wait.unwrap_or(DEFAULT_MERGE_WAIT));
    let merge = json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": format!("{name}-merge"), "labels": {"app.kubernetes.io/name": "bugsmith"}},
        "spec": {
            // A merge that found shards missing (3) or none (1) would find the same again.
            "backoffLimit": 2,
            "podFailurePolicy": {"rules": [
                {"action": "FailJob", "onExitCodes": {"containerName": "merge", "operator": "In", "values": [1, 3]}},
            ]},
            "template": {"spec": {
                "restartPolicy": "Never",
                "initContainers": [{"name": "wait-for-shards", "image": image, "command": ["/bin/sh", "-c", wait], "volumeMounts": mounts}],
                "containers": [{
                    "name": "merge", "image": image,
                    "command": ["/bin/sh", "-c", merge_finished(bugsmith, shared, shards)],
                    "volumeMounts": mounts,
                }],
                "volumes": volumes,
            }},
        },
    });
    let mut yaml = format!(
        "# Campaign {} in {shards} shards (written by bugsmith campaign --emit k8s).\n# kubectl apply -f campaign.yaml; outputs on the claim {claim} at {shared}.\n",
        campaign.name
    );
    for object in [config, job, merge] {
        yaml.push_str("---\n");
        yaml.push_str(&serde_yaml::to_string(&object).unwrap_or_default());
    }
    Ok(vec![write(&dir.join("campaign.yaml"), &yaml, false)?])
}
