"""Prints `bugsmith serve`'s overhead beyond the tests' own run time.

    python3 benches/serve_overhead.py HOST:PORT INSTANCES.json GOLD_DIR
GOLD_DIR is `<out>/run_evaluation/<run_id>/gold` of a `bugsmith eval ... gold` run (its
patch.diff files are the fixes). Each instance's fix is posted twice to a running `bugsmith serve`.
"""
import json
import statistics
import sys
import time
import urllib.request
from pathlib import Path

address, dataset, gold = sys.argv[1], sys.argv[2], Path(sys.argv[3])
instances = json.loads(Path(dataset).read_text())
overheads = []
for _ in range(2):
    for instance in instances:
        iid = instance["instance_id"]
        body = json.dumps({"instance_id": iid, "model_patch": (gold / iid / "patch.diff").read_text()}).encode()
        started = time.time()
        request = urllib.request.Request(f"http://{address}/v1/evaluate", data=body, headers={"Content-Type": "application/json"})
        report = json.loads(urllib.request.urlopen(request).read())[iid]
        overheads.append(time.time() - started - report["test_seconds"])
overheads.sort()
print(f"{len(overheads)} requests: overhead beyond the tests {statistics.median(overheads) * 1000:.0f} ms median, "
      f"{overheads[int(len(overheads) * 0.9)] * 1000:.0f} ms p90")
