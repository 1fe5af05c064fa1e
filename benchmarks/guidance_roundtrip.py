"""Time from POST of guidance to the console API to that guidance in the model's input,
while the agent waits on a session.

Everything is a separate process, as in use: `apollo serve` (console + runner), the scripted
OpenAI-compatible server, and this client posting guidance over HTTP with a bearer token.
Keys: median_ms, p99_ms. Target: p99 <= 1,000 ms.
"""

from __future__ import annotations

import asyncio
import json
import random
import shutil
import signal
import socket
import subprocess
import sys
import time

import httpx
from _common import report, summary_ms
from _synthetic import make_task, temp_home
from step_overhead import start_server

from apollo.log.events import Role
from apollo.log.sqlite import SQLiteStore
from apollo.rollout.home import Home

SAMPLES = 30


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def act(tool: str, **args: object) -> dict[str, object]:
    return {"content": "", "tool_calls": [{"name": tool, "arguments": args}]}


def main() -> None:
    home = temp_home()
    make_task(home / "task")
    script = home / "script.json"
    waits = [act("session_output", id="job", wait=60)] * (SAMPLES + 5)
    entries = [act("session_start", command="sleep 100000", name="job"), *waits]
    script.write_text(json.dumps({"script": entries, "default": act("finish", summary="done")}))
    model, model_port = start_server(script)
    store = SQLiteStore(home / "apollo.db")
    _, token = store.add_annotator("bench", Role.ANNOTATOR)
    apollo = [sys.executable, "-m", "apollo.cli"]
    queued = subprocess.run(
        [
            *apollo,
            "run",
            str(home / "task"),
            "--queue",
            "--home",
            str(home),
            "--model",
            f"http://127.0.0.1:{model_port}/v1",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    run_id = queued.stdout.split()[1]
    port = free_port()
    server = subprocess.Popen(
        [*apollo, "serve", "--port", str(port), "--home", str(home)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    records_url = f"http://127.0.0.1:{model_port}/_scripted/requests"
    api = httpx.Client(
        base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"}
    )
    rng = random.Random(3)
    latencies: list[float] = []
    try:
        need = 2  # session_start, then the first wait
        for i in range(SAMPLES):
            deadline = time.monotonic() + 60
            while len(records := httpx.get(records_url).json()) < need:
                assert time.monotonic() < deadline, "the agent made no progress"
                time.sleep(0.05)
            seen = len(records)  # the agent is now inside a 60 s session wait
            time.sleep(rng.uniform(0.1, 0.5))
            text = f"roundtrip guidance {i}"
            sent = time.perf_counter()
            answer = api.post(f"/api/runs/{run_id}/guidance", json={"text": text, "kind": "hint"})
            assert answer.status_code == 201, answer.text
            wanted = f"<real_user>{text}</real_user>"
            while True:
                records = httpx.get(records_url).json()
                hits = [
                    j
                    for j, r in enumerate(records[seen:], start=seen)
                    if any(m.get("content") == wanted for m in r["body"]["messages"][-2:])
                ]
                if hits:
                    latencies.append(records[hits[0]]["received"] - sent)
                    need = hits[0] + 1  # that request's answer is the next wait
                    break
                assert time.perf_counter() - sent < 30, "guidance never reached the model"
                time.sleep(0.02)
        api.post(f"/api/runs/{run_id}/control", json={"action": "stop"})
        report("guidance_roundtrip", {**summary_ms(latencies), "target_p99_ms": 1000.0})
    finally:
        api.close()
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)
        model.terminate()
        model.wait(timeout=10)
        store.close()
        # The server may be interrupted before it acted on the stop: end the session here.
        for run in Home(home).open_store().list_runs():
            asyncio.run(Home(home).sessions(run.id).kill_all())
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
