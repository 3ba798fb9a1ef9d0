# bugsmith runner: validates one candidate in a warm worker (bash).
# In:  WORKDIR, SCRATCH (holds patch.diff, may be empty), TEST_CMD, TEST_TIMEOUT, SENTINEL,
#      PYTEST_ADDOPTS (pytest only: where the JUnit XML goes).
# Out: marker lines `>>>>> bugsmith <what>`; the test output comes last, after `>>>>> bugsmith output`.
cd "$WORKDIR" || { echo ">>>>> bugsmith broken no work tree"; exit 0; }
# The commit every candidate starts from, recorded before the first test ever runs here.
[ -s "$SCRATCH/base" ] || git rev-parse HEAD > "$SCRATCH/base"
base=$(cat "$SCRATCH/base")
rm -rf "$SCRATCH/junit.xml" "$SCRATCH/out.txt" "$SCRATCH/tmp"
mkdir -p "$SCRATCH/tmp"
export TMPDIR="$SCRATCH/tmp"
if [ -s "$SCRATCH/patch.diff" ] && ! git apply --whitespace=nowarn "$SCRATCH/patch.diff" > "$SCRATCH/apply.txt" 2>&1; then
  echo ">>>>> bugsmith apply failed"
  cat "$SCRATCH/apply.txt"
  exit 0
fi
echo ">>>>> bugsmith applied"
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
if ! { git reset -q --hard "$base" && git clean -qfdx; } > /dev/null 2>&1 || [ "$(git rev-parse HEAD)" != "$base" ]; then
  echo ">>>>> bugsmith broken work tree did not reset"
fi
if [ ! -e "$SENTINEL" ]; then
  echo ">>>>> bugsmith broken files outside the work tree were removed"
fi
echo ">>>>> bugsmith output"
head -c 5000000 "$SCRATCH/out.txt"
