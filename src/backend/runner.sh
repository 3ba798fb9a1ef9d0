# bugsmith runner: validates one candidate in a warm worker (bash).
# In:  WORKDIR, SCRATCH (holds patch.diff, may be empty), TEST_CMD, TEST_TIMEOUT,
#      PYTEST_ADDOPTS (pytest only: where the JUnit XML goes; `-p bugsmith_pytest`, with
#      BUGSMITH_SELECT=SCRATCH/select.txt to run some tests, BUGSMITH_COVERAGE=SCRATCH/coverage.json
#      to record per-test coverage, returned as a marker).
#      Containment (set by the backend): CANDIDATE_ROOT (emptied before and after each
#      candidate; HOME and TMPDIR of the tests live in it), WIPE_SHM=1 (empty /dev/shm too),
#      SWEEP=1 (the runner is in a pid namespace of its own: afterwards every process but pid 1,
#      the runner and KEEP_PIDS is killed), ULIMITS (`v:KiB f:KiB u:N` for the tests), OOM_FILE
#      (a cgroup file with an `oom_kill N` line), SENTINEL (a file outside that must survive).
#      Evaluation: EVAL=1, SCRATCH/prediction.diff (may be empty) applied on top of the patch
#      with SWE-bench's three apply commands, then the files in TEST_FILES (one per line) reset
#      to their version with the patch alone.
# Out: marker lines `>>>>> bugsmith <what>`; the test output comes last, after `>>>>> bugsmith output`.
cd "$WORKDIR" || { echo ">>>>> bugsmith broken no work tree"; exit 0; }
# The commit every candidate starts from, recorded before the first test ever runs here.
[ -s "$SCRATCH/base" ] || git rev-parse HEAD > "$SCRATCH/base"
base=$(cat "$SCRATCH/base")
rm -rf "$SCRATCH/junit.xml" "$SCRATCH/coverage.json" "$SCRATCH/out.txt" "$SCRATCH/apply.txt" "$SCRATCH/tests"
candidate_root=${CANDIDATE_ROOT:-$SCRATCH/candidate}

# Empties the places tests may write besides the work tree, so nothing carries over.
wipe() {
  mkdir -p "$candidate_root" && find "$candidate_root" -mindepth 1 -delete 2>/dev/null
  [ "${WIPE_SHM:-}" = 1 ] && find /dev/shm -mindepth 1 -delete 2>/dev/null
  return 0
}

# The counter of the memory cgroup's OOM kills (empty when there is none to read).
oom_kills() {
  local file=${OOM_FILE:-} key value
  if [ -z "$file" ]; then
    for file in /sys/fs/cgroup/memory/memory.oom_control /sys/fs/cgroup/memory.events ""; do
      [ -r "$file" ] && break
    done
  fi
  [ -n "$file" ] && [ -r "$file" ] || return 0
  while read -r key value; do
    [ "$key" = oom_kill ] && { echo "$value"; return 0; }
  done < "$file"
}

# Kills every process the candidate left (whatever session or group it chose): all but pid 1,
# this runner and KEEP_PIDS. Sets `killed`; fails when some would not die. Runs in this shell
# (no subshell), so it never meets a process of its own.
sweep() {
  local keep=" 1 $$ $BASHPID ${KEEP_PIDS:-} " alive pid dir key value state round
  killed=0
  for round in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
    alive=0
    for dir in /proc/[0-9]*; do
      pid=${dir#/proc/}
      case "$keep" in *" $pid "*) continue ;; esac
      state=""
      while read -r key value; do
        [ "$key" = State: ] && { state=$value; break; }
      done < "$dir/status" 2>/dev/null
      case "$state" in "" | Z* | X*) continue ;; esac
      kill -KILL "$pid" 2>/dev/null && alive=$((alive + 1))
    done
    [ "$alive" = 0 ] && return 0
    [ "$round" = 1 ] && killed=$alive
    sleep 0.01
  done
  return 1
}

wipe
mkdir -p "$candidate_root/home" "$candidate_root/tmp"
export HOME="$candidate_root/home" TMPDIR="$candidate_root/tmp"
if [ -s "$SCRATCH/patch.diff" ] && ! git apply --whitespace=nowarn "$SCRATCH/patch.diff" > "$SCRATCH/apply.txt" 2>&1; then
  echo ">>>>> bugsmith apply failed"
  cat "$SCRATCH/apply.txt"
  rm -f "$SCRATCH/prediction.diff"
  exit 0
fi
echo ">>>>> bugsmith applied"
run_tests=1
if [ "${EVAL:-}" = 1 ]; then
  while IFS= read -r file; do
    if [ -n "$file" ] && [ -f "$file" ]; then
      mkdir -p "$SCRATCH/tests/$(dirname "$file")" && cp -p "$file" "$SCRATCH/tests/$file"
    fi
  done <<< "${TEST_FILES:-}"
  if [ -s "$SCRATCH/prediction.diff" ]; then
    applied=""
    for apply in "git apply --verbose" "git apply --verbose --reject" "patch --batch --fuzz=5 -p1 -i"; do
      if $apply "$SCRATCH/prediction.diff" >> "$SCRATCH/apply.txt" 2>&1; then
        applied=$apply
        break
      fi
    done
    if [ -n "$applied" ]; then
      echo ">>>>> bugsmith prediction applied $applied"
    else
      echo ">>>>> bugsmith prediction failed $(tail -c 2000 "$SCRATCH/apply.txt" | base64 -w0)"
      run_tests=0
    fi
  fi
  while IFS= read -r file; do
    [ -n "$file" ] || continue
    if [ -f "$SCRATCH/tests/$file" ]; then
      mkdir -p "$(dirname "$file")" && cp -p "$SCRATCH/tests/$file" "$file"
    else
      rm -f "$file"
    fi
  done <<< "${TEST_FILES:-}"
fi
rm -f "$SCRATCH/prediction.diff"
if [ "$run_tests" = 1 ]; then
  # Per-test coverage is bugsmith's: the repository's pytest-cov (if any) stands aside.
  if [ -n "${BUGSMITH_COVERAGE:-}" ] && python -c 'import pytest_cov' 2>/dev/null; then
    export PYTEST_ADDOPTS="${PYTEST_ADDOPTS:-} --no-cov"
  fi
  start=${EPOCHREALTIME//[!0-9]/}
  oom_before=$(oom_kills)
  # Its own session, so whatever the tests leave running can be killed afterwards.
  (
    for limit in ${ULIMITS:-}; do ulimit -S -H "-${limit%%:*}" "${limit#*:}" 2>/dev/null; done
    exec setsid timeout -k 5 "$TEST_TIMEOUT" bash -c "$TEST_CMD"
  ) > "$SCRATCH/out.txt" 2>&1 < /dev/null &
  session=$!
  wait "$session"
  code=$?
  kill -KILL -- "-$session" 2>/dev/null
  end=${EPOCHREALTIME//[!0-9]/}
  echo ">>>>> bugsmith exit $code"
  echo ">>>>> bugsmith millis $(( (end - start) / 1000 ))"
  oom_after=$(oom_kills)
  if [ -n "$oom_before" ] && [ -n "$oom_after" ] && [ "$oom_after" != "$oom_before" ]; then
    echo ">>>>> bugsmith oom"
  fi
  if [ -f "$SCRATCH/junit.xml" ]; then
    echo ">>>>> bugsmith junit $(head -c 20000000 "$SCRATCH/junit.xml" | base64 -w0)"
  fi
  if [ -f "$SCRATCH/coverage.json" ]; then
    echo ">>>>> bugsmith coverage $(base64 -w0 < "$SCRATCH/coverage.json")"
  fi
fi
if [ "${SWEEP:-}" = 1 ]; then
  if sweep; then
    [ "$killed" = 0 ] || echo ">>>>> bugsmith leaked $killed"
  else
    echo ">>>>> bugsmith broken processes of the candidate survived being killed"
  fi
fi
if ! { git reset -q --hard "$base" && git clean -qfdx; } > /dev/null 2>&1 || [ "$(git rev-parse HEAD)" != "$base" ]; then
  echo ">>>>> bugsmith broken work tree did not reset"
fi
if [ -n "${SENTINEL:-}" ] && [ ! -e "$SENTINEL" ]; then
  echo ">>>>> bugsmith broken files outside the work tree were removed"
fi
# The scratch folder holds only the runner's own files.
for entry in "$SCRATCH"/* "$SCRATCH"/.[!.]*; do
  [ -e "$entry" ] || continue
  case "${entry##*/}" in
    base | patch.diff | prediction.diff | select.txt | apply.txt | junit.xml | coverage.json | out.txt | tests | candidate) ;;
    *) echo ">>>>> bugsmith broken a file was written outside the work tree: $entry" ;;
  esac
done
wipe
echo ">>>>> bugsmith output"
[ -f "$SCRATCH/out.txt" ] && head -c 5000000 "$SCRATCH/out.txt"
