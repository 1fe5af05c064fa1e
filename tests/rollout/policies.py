"""A scripted policy for batch tests: on an instance of noise-filter or bug-patch it lists the
visible options, applies the first one and finishes. Whether that succeeds is known from the
instance's hidden answer (`first_option_wins`), so a batch's successes are known in advance.

The policy reads only the request (how many tool results the conversation holds), so it
serves any number of runs at once, and a resumed run, the same way."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from apollo.env.family import resolve_family
from apollo.llm.scripted import Request, ScriptedServer, call, reply

LIST = {"noise-filter": "python3 filters.py list", "bug-patch": "ls patches"}


def apply_first(family: str, listing: str) -> str:
    first = listing.strip().splitlines()[0].split()[0]
    if family == "noise-filter":
        return f"python3 filters.py {first}"
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


def listed_filters(workspace: Path) -> list[str]:
    """The filter names `python3 filters.py list` prints in a noise-filter workspace."""
    listed = subprocess.run(
        [sys.executable, "filters.py", "list"],
        cwd=workspace,
        capture_output=True,
        text=True,
        check=True,
    )
    return [line.split()[0] for line in listed.stdout.splitlines()]


def first_option_wins(family: str, seed: int, instances: Path) -> bool:
    """Whether applying the first listed option solves instance `seed` (from its truth)."""
    task = resolve_family(family).materialize(seed, instances)
    answer = json.loads((task.eval_dir / "truth" / "answer.json").read_text())
    ws = task.workspace_template
    if family == "noise-filter":
        return listed_filters(ws)[0] == answer["filter"]
    return bool(sorted(p.stem for p in (ws / "patches").glob("*.py"))[0] == answer["patch"])


def is_first(request: Request) -> bool:
    """Whether a request opens a run's conversation (no tool result yet)."""
    body = request.body or {}
    return bool(body.get("tools")) and not any(
        m.get("role") == "tool" for m in body.get("messages", ())
    )


class GatedServer(ScriptedServer):
    """The policy's server, with two gates on the requests that open a run:

    - `width`: each waits until `width` runs have opened, so those runs are provably driven
      at once (after `timeout` seconds it goes on and `gate_failed` is set);
    - `hold`: the `hold`-th one is never answered (until the server stops), and `held` is set
      when it arrives: a run is provably in flight, to stop its runner there. The run's
      request after a resume opens it again and passes."""

    def __init__(self, width: int = 1, hold: int | None = None, timeout: float = 60.0) -> None:
        super().__init__(default=policy)
        self.width = width
        self.hold = hold
        self.timeout = timeout
        self.opened = 0
        self.held = threading.Event()
        self.gate_failed = False
        self._all_open: asyncio.Event | None = None

    async def _complete(self, request: Request, writer: asyncio.StreamWriter) -> bool:
        if is_first(request):
            self.opened += 1
            if self.opened == self.hold:
                self.held.set()
                assert self._stopping is not None
                await self._stopping.wait()
                return False
            if self._all_open is None:
                self._all_open = asyncio.Event()
            if self.opened >= self.width:
                self._all_open.set()
            try:
                await asyncio.wait_for(self._all_open.wait(), self.timeout)
            except TimeoutError:
                self.gate_failed = True
        return await super()._complete(request, writer)
