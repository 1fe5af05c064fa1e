"""Run the visible tests (tests.json) against kit.py, or put a candidate fix in kit.py and run
them there.

usage:
  python3 check.py                     test kit.py as it is
  python3 check.py patches/NAME.py     copy that candidate over kit.py, then test kit.py
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    if len(argv) > 1 or (argv and argv[0] in ("-h", "--help")):
        print(__doc__.strip())
        return 2
    kit = HERE / "kit.py"
    candidates = sorted((HERE / "patches").glob("*.py"))
    path = (HERE / argv[0]).resolve() if argv else kit
    if argv and path not in [c.resolve() for c in candidates]:
        # Name the files: a model that guesses names (patches/fix2.py, fix4.py...) otherwise
        # spends every step on the same error. Nothing but a candidate is copied over kit.py.
        listed = ", ".join(f"patches/{c.name}" for c in candidates) or "none (patches/ is empty)"
        print(f"{argv[0]}: not a candidate; the candidates are {listed}", file=sys.stderr)
        return 2
    if argv:
        shutil.copyfile(path, kit)
        print(f"kit.py is now a copy of {argv[0]}")
    tests = json.loads((HERE / "tests.json").read_text())
    spec = importlib.util.spec_from_file_location("kit", kit)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    fn = getattr(module, tests["function"])
    failed = []
    for case in tests["cases"]:
        try:
            got = json.loads(json.dumps(fn(*case["args"])))
        except Exception as exc:
            got = f"raised {type(exc).__name__}: {exc}"
        if got != case["expected"]:
            failed.append((case, got))
    print(f"kit.py: {len(tests['cases']) - len(failed)} of {len(tests['cases'])} visible tests pass")
    for case, got in failed[:3]:
        shown = ", ".join(json.dumps(a) for a in case["args"])
        print(f"  FAIL {tests['function']}({shown}) returned {json.dumps(got)}, "
              f"expected {json.dumps(case['expected'])}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
