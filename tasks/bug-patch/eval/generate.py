"""Make one instance of bug-patch: python3 generate.py SEED WORKSPACE TRUTH

The seed picks a function with a bug (templates.py), deals its four candidate fixes (one
right, three wrong) to the names fix-a .. fix-d, and draws the visible and the hidden test
cases. Cases are redrawn (same seed,
next attempt) until every wrong candidate fails a visible test and at least a quarter of the
hidden ones, so testing the candidates always finds the fix."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path
from typing import Any, Callable

from templates import TEMPLATES, Template

VISIBLE_RANDOM, HIDDEN = 3, 40
NAMES = ("fix-a", "fix-b", "fix-c", "fix-d")
MIN_HIDDEN_FAILS = 0.25


def compile_fn(template: Template, source: str) -> Callable[..., Any]:
    namespace: dict[str, Any] = {}
    exec(compile(source, template.name, "exec"), namespace)
    return namespace[template.name]


def outcome(fn: Callable[..., Any], args: list[Any]) -> Any:
    """The JSON form of fn(*args), or the name of what it raised."""
    try:
        return json.loads(json.dumps(fn(*args)))
    except Exception as exc:  # a candidate may crash on a case; that fails the case
        return {"raised": type(exc).__name__}


def main() -> None:
    seed, workspace, truth = int(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    rng = random.Random(f"bug-patch/{seed}")
    template = TEMPLATES[rng.randrange(len(TEMPLATES))]
    names = list(NAMES)  # the same four names in every instance; which one is right varies
    roles = [template.right, *template.wrong]
    rng.shuffle(roles)
    candidates = dict(zip(names, roles))
    right = next(n for n, role in candidates.items() if role is template.right)
    sources = {n: template.source(body, f"Candidate fix: {what}.") for n, (what, body) in candidates.items()}
    fns = {n: compile_fn(template, src) for n, src in sources.items()}
    for attempt in range(200):
        draw = random.Random(f"bug-patch/{seed}/cases/{attempt}")
        visible = [list(c) for c in template.edge] + [template.draw(draw) for _ in range(VISIBLE_RANDOM)]
        hidden = [template.draw(draw) for _ in range(HIDDEN)]
        expect = fns[right]
        ok = True
        for name, fn in fns.items():
            if name == right:
                continue
            fails_visible = any(outcome(fn, c) != outcome(expect, c) for c in visible)
            fails_hidden = sum(outcome(fn, c) != outcome(expect, c) for c in hidden)
            ok = ok and fails_visible and fails_hidden >= MIN_HIDDEN_FAILS * HIDDEN
        if ok:
            break
    else:
        raise SystemExit(f"seed {seed}: no cases tell the candidates apart")
    original = template.source(template.original, "Small helpers; see the docstring of each.")
    (workspace / "kit.py").write_text(original)
    (workspace / "patches").mkdir()
    for name in sorted(sources):
        (workspace / "patches" / f"{name}.py").write_text(sources[name])
    tests = {
        "function": template.name,
        "cases": [{"args": c, "expected": outcome(expect, c)} for c in visible],
    }
    (workspace / "tests.json").write_text(json.dumps(tests, indent=1) + "\n")
    answer = {"patch": right, "function": template.name}
    (truth / "answer.json").write_text(json.dumps(answer, indent=1) + "\n")
    cases = [{"args": c, "expected": outcome(expect, c)} for c in hidden]
    (truth / "cases.json").write_text(json.dumps({"function": template.name, "cases": cases}) + "\n")


if __name__ == "__main__":
    main()
