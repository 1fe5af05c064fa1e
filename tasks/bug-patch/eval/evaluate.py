"""Score kit.py of a bug-patch instance on its hidden tests: python3 evaluate.py WORKSPACE

score = 100 x the share of hidden test cases passed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

# Runs the workspace's kit.py in a child process, so a hang or a crash is a result, not ours.
CHILD = """
import importlib.util, json, sys
cases = json.load(sys.stdin)
spec = importlib.util.spec_from_file_location("kit", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
fn = getattr(module, cases["function"])
passed = 0
for case in cases["cases"]:
    try:
        passed += json.loads(json.dumps(fn(*case["args"]))) == case["expected"]
    except Exception:
        pass  # a case the candidate raises on is a failed case
print(json.dumps({"passed": passed}))
"""


def result(score: float, **details: object) -> None:
    print(json.dumps({"score": round(score, 1), "details": details}))


def main() -> None:
    kit = Path(sys.argv[1]) / "kit.py"
    cases = json.loads(Path("truth/cases.json").read_text())
    total = len(cases["cases"])
    if not kit.is_file():
        return result(0, error="kit.py not found in the workspace")
    try:
        done = subprocess.run(
            [sys.executable, "-c", CHILD, str(kit)],
            input=json.dumps(cases),
            capture_output=True,
            text=True,
            timeout=20,
        )
    except subprocess.TimeoutExpired:
        return result(0, error="the hidden tests took more than 20 seconds")
    if done.returncode != 0:
        return result(0, error=f"kit.py failed: {done.stderr.strip()[-500:]}")
    passed = json.loads(done.stdout.strip().splitlines()[-1])["passed"]
    result(100 * passed / total, passed=passed, total=total, kit_py=what_kit_is(kit))


def what_kit_is(kit: Path) -> str:
    """Which candidate kit.py is a copy of, if any: the score alone says that something is
    wrong, not what."""
    text = kit.read_bytes()
    for patch in sorted((kit.parent / "patches").glob("*.py")):
        if patch.read_bytes() == text:
            return f"a copy of patches/{patch.name}"
    return "none of the candidates (`python3 check.py patches/NAME.py` puts one in kit.py)"


if __name__ == "__main__":
    main()
