"""Run the hidden cases against the agent's module; one JSON line per case to RESULTS.

Usage: python3 run_cases.py WORKSPACE RESULTS
Run by evaluate.py in a separate process, so a crash, a hang or an infinite loop in the
agent's code cannot take the evaluator down. Each case gets its own time limit (SIGALRM).
"""

import importlib.util
import json
import signal
import sys
import traceback
from pathlib import Path

from cases import CASES

CASE_SECONDS = 10


class CaseTimeout(Exception):
    """A case ran past CASE_SECONDS."""


def on_alarm(signum, frame):
    """Turn SIGALRM into an exception inside the running case."""
    raise CaseTimeout(f"timed out after {CASE_SECONDS} s")


def main():
    workspace, results = Path(sys.argv[1]), Path(sys.argv[2])
    with open(results, "w", encoding="utf-8") as out:
        def record(**row):
            out.write(json.dumps(row) + "\n")
            out.flush()

        sys.path.insert(0, str(workspace))
        try:
            spec = importlib.util.spec_from_file_location("intervals", workspace / "intervals.py")
            module = importlib.util.module_from_spec(spec)
            sys.modules["intervals"] = module
            spec.loader.exec_module(module)
        except BaseException as exc:  # noqa: BLE001 - report any import failure
            record(import_error=f"{type(exc).__name__}: {exc}")
            return
        signal.signal(signal.SIGALRM, on_alarm)
        for name, weight, fn in CASES:
            signal.alarm(CASE_SECONDS)
            try:
                fn(module)
                row = {"name": name, "weight": weight, "passed": True}
            except BaseException as exc:  # noqa: BLE001 - a failing case must not stop the run
                last = traceback.extract_tb(exc.__traceback__)[-1]
                row = {"name": name, "weight": weight, "passed": False,
                       "error": f"{type(exc).__name__}: {exc}"[:300], "line": last.lineno}
            finally:
                signal.alarm(0)
            record(**row)


if __name__ == "__main__":
    main()
