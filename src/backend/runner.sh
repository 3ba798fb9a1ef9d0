# bugsmith runner: validates one candidate in a warm worker (bash).
# In:  WORKDIR, SCRATCH (holds patch.diff, may be empty), TEST_CMD, TEST_TIMEOUT, SENTINEL,
#      PYTEST_ADDOPTS (pytest only: where the JUnit XML goes).
#      Evaluation: EVAL=1, SCRATCH/prediction.diff (may be empty) applied on top of the patch
#      with SWE-bench's three apply commands, then the files in TEST_FILES (one per line) reset
#      to their version with the patch alone.
# Out: marker lines `>>>>> bugsmith <what>`; the test output comes last, after `>>>>> bugsmith output`.
cd "$WORKDIR" || { echo ">>>>> bugsmith broken no work tree"; exit 0; }
# The commit every candidate starts from, recorded before the first test ever runs here.
[ -s "$SCRATCH/base" ] || git rev-parse HEAD > "$SCRATCH/base"
base=$(cat "$SCRATCH/base")
rm -rf "$SCRATCH/junit.xml" "$SCRATCH/out.txt" "$SCRATCH/tmp" "$SCRATCH/tests"
mkdir -p "$SCRATCH/tmp"
export TMPDIR="$SCRATCH/tmp"
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
  start=${EPOCHREALTIME//[!0-9]/}
  # Its own session, so whatever the tests leave running can be killed afterwards.
  setsid timeout -k 5 "$TEST_TIMEOUT" bash -c "$TEST_CMD" > "$SCRATCH/out.txt" 2>&1 < /dev/null &
  session=$!
  wait "$session"
  code=$?
  kill -KILL -- "-$session" 2>/dev/null
  end=${EPOCHREALTIME//[!0-9]/}
  echo ">>>>> bugsmith exit $code"
  echo ">>>>> bugsmith millis $(( (end - start) / 1000 ))"
  if [ -f "$SCRATCH/junit.xml" ]; then
    echo ">>>>> bugsmith junit $(head -c 20000000 "$SCRATCH/junit.xml" | base64 -w0)"
  fi
fi
if ! { git reset -q --hard "$base" && git clean -qfdx; } > /dev/null 2>&1 || [ "$(git rev-parse HEAD)" != "$base" ]; then
  echo ">>>>> bugsmith broken work tree did not reset"
fi
if [ ! -e "$SENTINEL" ]; then
  echo ">>>>> bugsmith broken files outside the work tree were removed"
fi
echo ">>>>> bugsmith output"
[ -f "$SCRATCH/out.txt" ] && head -c 5000000 "$SCRATCH/out.txt"
