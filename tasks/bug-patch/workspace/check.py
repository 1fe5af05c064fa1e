"""Run the visible tests (tests.json) against kit.py, or against a candidate file.

usage:
  python3 check.py                             test kit.py
  python3 check.py patches/NAME.py             test a candidate fix without applying it
  python3 check.py patches/NAME.py --apply     test it and copy it over kit.py (what is scored)
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    apply = "--apply" in argv
    args = [a for a in argv if a != "--apply"]
    if len(args) > 1 or (args and args[0] in ("-h", "--help")) or (apply and not args):
        print(__doc__.strip())
        return 2
    path = HERE / (args[0] if args else "kit.py")
    if not path.is_file():
        # Name the files: a model that guesses names (patches/fix2.py, fix4.py...) otherwise
        # spends every step on the same error.
        found = [f"patches/{p.name}" for p in sorted((HERE / "patches").glob("*.py"))]
        listed = ", ".join(found) if found else "none (patches/ is empty)"
        print(f"{args[0]}: no such file; the candidates are {listed}", file=sys.stderr)
        return 2
    candidate = path.resolve() != (HERE / "kit.py").resolve()
    if apply and candidate:
        shutil.copyfile(path, HERE / "kit.py")
        print(f"applied: kit.py is now a copy of {args[0]}")
    tests = json.loads((HERE / "tests.json").read_text())
    spec = importlib.util.spec_from_file_location("candidate", path)
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
    name = args[0] if args else "kit.py"
    print(f"{name}: {len(tests['cases']) - len(failed)} of {len(tests['cases'])} visible tests pass")
    for case, got in failed[:3]:
        shown = ", ".join(json.dumps(a) for a in case["args"])
        print(f"  FAIL {tests['function']}({shown}) returned {json.dumps(got)}, "
              f"expected {json.dumps(case['expected'])}")
    if candidate and not apply and not failed:
        print(f"  (not applied: kit.py is unchanged; `python3 check.py {name} --apply` applies it)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
