# bugsmith runner: validates one candidate in a warm worker (bash).
# In:  WORKDIR, SCRATCH, BUGSMITH_PATCH (base64, may be empty), TEST_CMD, TEST_TIMEOUT, SENTINEL.
# Out: marker lines `>>>>> bugsmith <what>`; the test output comes last, after `>>>>> bugsmith output`.
cd "$WORKDIR" || { echo ">>>>> bugsmith broken no work tree"; exit 0; }
rm -f "$SCRATCH/junit.xml" "$SCRATCH/out.txt" "$SCRATCH/patch.diff"
printf '%s' "$BUGSMITH_PATCH" | base64 -d > "$SCRATCH/patch.diff"
if [ -s "$SCRATCH/patch.diff" ] && ! git apply --whitespace=nowarn "$SCRATCH/patch.diff" > "$SCRATCH/apply.txt" 2>&1; then
  echo ">>>>> bugsmith apply failed"
  cat "$SCRATCH/apply.txt"
  exit 0
fi
echo ">>>>> bugsmith applied"
start=${EPOCHREALTIME/./}
timeout -k 5 "$TEST_TIMEOUT" bash -c "$TEST_CMD" > "$SCRATCH/out.txt" 2>&1 < /dev/null
code=$?
end=${EPOCHREALTIME/./}
echo ">>>>> bugsmith exit $code"
echo ">>>>> bugsmith millis $(( (end - start) / 1000 ))"
if [ -f "$SCRATCH/junit.xml" ]; then
  echo ">>>>> bugsmith junit $(base64 -w0 "$SCRATCH/junit.xml")"
fi
if ! { git reset -q --hard && git clean -qfdx; } > /dev/null 2>&1; then
  echo ">>>>> bugsmith broken work tree did not reset"
fi
if [ ! -e "$SENTINEL" ]; then
  echo ">>>>> bugsmith broken files outside the work tree were removed"
fi
echo ">>>>> bugsmith output"
cat "$SCRATCH/out.txt"
