"""Time from guidance written to the log (by another writer, on its own connection) to that
guidance in the model's input, while the agent sleeps or waits on a session.

The scripted server (a separate process) makes the agent alternate `sleep(60)` and
`session_output(wait=60)` on a long-running session; a writer thread posts guidance at
random moments. Keys: median_ms, p99_ms. Target: p99 <= 1,000 ms.
"""

from __future__ import annotations

import asyncio
import json
import random
import shutil
import threading
import time

import httpx
from _common import report, summary_ms
from _synthetic import make_task, temp_home
from step_overhead import start_server

from apollo.agent.loop import Agent, AgentConfig
from apollo.env.task import load_task
from apollo.env.workspace import Workspace
from apollo.llm.openai_client import OpenAIChatModel
from apollo.log.sqlite import SQLiteStore
from apollo.log.writes import post_control, post_guidance

SAMPLES = 40


def main() -> None:
    home = temp_home()
    make_task(home / "task")
    script = home / "script.json"

    def act(tool: str, **args: object) -> dict[str, object]:
        return {"content": "", "tool_calls": [{"name": tool, "arguments": args}]}

    waits = [act("sleep", seconds=60), act("session_output", id="s1", wait=60)] * (SAMPLES + 2)
    entries = [act("session_start", command="sleep 100000", name="s1"), *waits]
    script.write_text(json.dumps({"script": entries, "default": act("finish", summary="done")}))
    proc, port = start_server(script)
    task = load_task(home / "task")
    db = home / "apollo.db"
    store = SQLiteStore(db)
    run_id = store.create_run(task.id, {}).id
    workspace = Workspace.create(task, home / "runs" / run_id)
    model = OpenAIChatModel(f"http://127.0.0.1:{port}/v1", "scripted")
    config = AgentConfig()
    agent = Agent(store, run_id, task, workspace, model, config)
    posted: dict[str, float] = {}
    done = threading.Event()

    def writer() -> None:
        own = SQLiteStore(db)  # a second connection, as the CLI or console would have
        rng = random.Random(1)
        seen = 0
        while not done.is_set() and seen < SAMPLES:
            n = len(httpx.get(f"http://127.0.0.1:{port}/_scripted/requests").json())
            if n <= seen + 1:  # wait until the agent is inside its next wait
                time.sleep(0.05)
                continue
            time.sleep(rng.uniform(0.1, 0.6))
            text = f"guidance number {seen}"
            post_guidance(own, run_id, "bench", text, "hint")
            posted[text] = time.perf_counter()
            seen = n - 1
        while len(httpx.get(f"http://127.0.0.1:{port}/_scripted/requests").json()) <= seen + 1:
            time.sleep(0.05)  # the last guidance reaches the model, then the run is stopped
        post_control(own, run_id, "bench", "stop")
        own.close()

    thread = threading.Thread(target=writer)

    async def run() -> None:
        thread.start()
        try:
            await agent.run()
        finally:
            done.set()
            await model.aclose()

    try:
        asyncio.run(run())
        thread.join()
        records = httpx.get(f"http://127.0.0.1:{port}/_scripted/requests").json()
        latencies = []
        for rec in records:
            if not rec["path"].endswith("/chat/completions"):
                continue
            for msg in rec["body"]["messages"][-3:]:
                content = str(msg.get("content"))
                for text, at in list(posted.items()):
                    if f"<real_user>{text}</real_user>" == content:
                        latencies.append(rec["received"] - at)
                        del posted[text]
        assert not posted, f"guidance never delivered: {list(posted)}"
        report("guidance_latency", {**summary_ms(latencies), "target_p99_ms": 1000.0})
    finally:
        asyncio.run(workspace.shutdown())  # ends the session even if the run did not finish
        proc.terminate()
        proc.wait(timeout=10)
        store.close()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
