"""A scripted policy for batch tests: on an instance of noise-filter or bug-patch it lists the
visible options, applies the first one and finishes. Whether that succeeds is known from the
instance's hidden answer (`first_option_wins`), so a batch's successes are known in advance.

The policy reads only the request (how many tool results the conversation holds), so it
serves any number of runs at once, and a resumed run, the same way."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from apollo.env.family import resolve_family
from apollo.llm.scripted import Request, call, reply

LIST = {"noise-filter": "python3 filters.py list", "bug-patch": "ls patches"}


def apply_first(family: str, listing: str) -> str:
    first = listing.strip().splitlines()[0].split()[0]
    if family == "noise-filter":
        return f"python3 filters.py apply {first}"
    return f"cp patches/{first} kit.py"


def policy(request: Request) -> dict[str, Any]:
    body = request.body
    if not body.get("tools"):  # a summary call (not expected in runs this short)
        return reply("<state_snapshot>short run</state_snapshot>")
    messages = body["messages"]
    family = "noise-filter" if "filters.py" in json.dumps(messages[:3]) else "bug-patch"
    results = [m for m in messages if m.get("role") == "tool"]
    if not results:
        name, args = "run", {"command": LIST[family]}
    elif len(results) == 1:
        name, args = "run", {"command": apply_first(family, str(results[0]["content"]))}
    else:
        name, args = "finish", {"summary": "applied the first option"}
    return reply(f"calling {name}", tool_calls=[call(name, args)])


def first_option_wins(family: str, seed: int, instances: Path) -> bool:
    """Whether applying the first listed option solves instance `seed` (from its truth)."""
    task = resolve_family(family).materialize(seed, instances)
    answer = json.loads((task.eval_dir / "truth" / "answer.json").read_text())
    ws = task.workspace_template
    if family == "noise-filter":
        listed = subprocess.run(
            [sys.executable, "filters.py", "list"], cwd=ws, capture_output=True, text=True, check=True
        )
        return bool(listed.stdout.split()[0] == answer["filter"])
    return bool(sorted(p.stem for p in (ws / "patches").glob("*.py"))[0] == answer["patch"])
