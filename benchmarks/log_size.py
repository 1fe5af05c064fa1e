"""Bytes on disk of a 5,000-step run with summaries, against the same run stored as one
full-prompt JSON file per step (the InnovatorBench scaffold's layout).

Keys: apollo_bytes, full_prompt_bytes, ratio (target: ratio <= 0.05).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from _common import report
from _synthetic import build_run, temp_home

from apollo.log.calls import apply_input, call_output
from apollo.log.events import Kind

STEPS = 5000


def db_bytes(db: Path) -> int:
    return sum(p.stat().st_size for p in db.parent.glob(db.name + "*"))


def main() -> None:
    home = temp_home()
    try:
        store, run_id, _ = build_run(STEPS, home)
        store._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        apollo_bytes = db_bytes(store.path)
        # The same run, one file per model call with the whole prompt and the response.
        out = home / "full_prompts"
        out.mkdir()
        ids: list[str] = []
        prev: int | None = None
        texts: dict[str, str] = {}
        full = 0
        calls = 0
        for ev in store.events(run_id, kinds=[Kind.MODEL_CALL]):
            ids = apply_input(prev, ids, ev.payload["input"])
            prev = ev.seq
            missing = [i for i in ids if i not in texts]
            if missing:
                texts.update(store.get_blobs(missing))
            tools = store.get_blob(ev.payload["tools"]) if ev.payload.get("tools") else "[]"
            record = {
                "step": ev.step,
                "messages": [json.loads(texts[i]) for i in ids],
                "tools": json.loads(tools),
                "response": call_output(store, ev.payload),
            }
            path = out / f"step_{calls:05d}.json"
            path.write_text(json.dumps(record, ensure_ascii=False))
            full += path.stat().st_size
            calls += 1
        report(
            "log_size",
            {
                "steps": STEPS,
                "model_calls": calls,
                "apollo_bytes": apollo_bytes,
                "full_prompt_bytes": full,
                "ratio": round(apollo_bytes / full, 5),
                "target_ratio": 0.05,
            },
        )
    finally:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
