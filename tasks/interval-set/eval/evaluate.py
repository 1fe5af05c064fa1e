"""Hidden evaluator for interval-set.

Usage: python3 evaluate.py WORKSPACE   (run with this folder as the working directory)

Runs the hidden cases (cases.py) against WORKSPACE/intervals.py in a child process with a
time limit, and scores the weighted percentage of cases passed. A case that crashes, hangs
or is never reached counts as failed. Prints one JSON object on its last line.
"""

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from cases import CASES

HERE = Path(__file__).resolve().parent
TOTAL_SECONDS = 120


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: python3 evaluate.py WORKSPACE")
    workspace = Path(sys.argv[1]).resolve()
    details = {}
    rows = []
    if not (workspace / "intervals.py").is_file():
        details["error"] = "intervals.py not found in the workspace"
    else:
        with tempfile.TemporaryDirectory() as tmp:
            results = Path(tmp) / "results.jsonl"
            try:
                proc = subprocess.run(
                    [sys.executable, str(HERE / "run_cases.py"), str(workspace), str(results)],
                    cwd=tmp, capture_output=True, text=True, timeout=TOTAL_SECONDS,
                )
                if proc.returncode != 0:
                    details["runner_exit"] = proc.returncode
                    details["runner_stderr"] = proc.stderr[-500:]
            except subprocess.TimeoutExpired:
                details["error"] = f"the cases did not finish within {TOTAL_SECONDS} s"
            if results.is_file():
                rows = [json.loads(line) for line in results.read_text().splitlines() if line]
    if rows and "import_error" in rows[0]:
        details["error"] = "importing intervals.py failed: " + rows[0]["import_error"]
        rows = []
    passed = {r["name"] for r in rows if r.get("passed")}
    total = sum(weight for _, weight, _ in CASES)
    earned = sum(weight for name, weight, _ in CASES if name in passed)
    details["passed"] = len(passed)
    details["cases"] = len(CASES)
    details["failed"] = {r["name"]: r["error"] for r in rows if not r.get("passed")}
    details["not_run"] = [name for name, _, _ in CASES if name not in {r["name"] for r in rows}]
    print(json.dumps({"score": round(100 * earned / total, 2), "details": details}))


if __name__ == "__main__":
    main()
