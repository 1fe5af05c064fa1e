"""The console API's data and writes: run summaries, detail, events, guidance life, labels,
presence, controls, tasks; limits, malformed input and hostile text."""

from __future__ import annotations

import itertools
import json
import re
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

import apollo.server
from apollo.log.events import Event, Kind, NewEvent
from apollo.log.sqlite import SQLiteStore
from apollo.log.store import BUSY_ENV
from apollo.log.writes import post_label, post_presence
from apollo.rollout.home import Home
from apollo.server.app import create_app
from apollo.server.models import EventsResponse, RunDetail, RunsResponse
from apollo.server.views import LONG_IDLE_S, RunCache, RunFold
from tests.agent.harness import make_task
from tests.log.lockholder import LockHolder
from tests.server.conftest import LiveServer, Tokens
from tests.server.fakelog import BUDGET, FakeRun

HOSTILE = [
    "<script>alert(1)</script>",
    "javascript:alert(document.cookie)",
    "<img src=x onerror=alert(1)>",
    "ctrl \x00\x01\x1b[31mred\x7f \u2028 \u202e reversed",
    '"}]});alert(1);//',
]


def guide(client: TestClient, tokens: Tokens, run_id: str, **body: object) -> httpx.Response:
    payload = {"text": "read the error message", "kind": "hint", **body}
    return client.post(
        f"/api/runs/{run_id}/guidance", json=payload, headers=tokens.bearer("annotator")
    )


def detail(client: TestClient, tokens: Tokens, run_id: str) -> RunDetail:
    r = client.get(f"/api/runs/{run_id}", headers=tokens.bearer("viewer"))
    assert r.status_code == 200, r.text
    return RunDetail.model_validate(r.json())


def test_guidance_life_queued_delivered_cancelled(
    client: TestClient, tokens: Tokens, run: FakeRun
) -> None:
    first = guide(client, tokens, run.run_id, kind="correction", drift_from_step=1, urgent=True)
    assert first.status_code == 201
    body = first.json()
    assert body["state"] == "queued" and body["id"].startswith("g-")
    second = guide(client, tokens, run.run_id, text="and then stop")
    [g1, g2] = detail(client, tokens, run.run_id).guidance
    assert (g2.state, g2.text, g2.urgent) == ("queued", "and then stop", False)
    assert (g1.state, g1.author, g1.kind, g1.urgent, g1.drift_from_step) == (
        "queued",
        "ann",
        "correction",
        True,
        1,
    )
    assert detail(client, tokens, run.run_id).guidance_queued == 2
    run.deliver(body["id"])
    run.act("think", {"thought": "ok"})
    run.cancel(second.json()["id"])
    got = detail(client, tokens, run.run_id)
    assert [(g.state, g.delivered_step) for g in got.guidance] == [
        ("delivered", 3),
        ("cancelled", None),
    ]
    assert got.guidance_queued == 0 and got.guidance_count == 2


def test_writes_are_attributed_and_in_the_log(
    client: TestClient, tokens: Tokens, run: FakeRun, store: SQLiteStore
) -> None:
    h = tokens.bearer("annotator")
    url = f"/api/runs/{run.run_id}"
    label = client.post(
        f"{url}/labels", json={"step": 2, "verdict": "mask", "reason": "ls again"}, headers=h
    )
    assert label.status_code == 201
    assert (
        client.post(f"{url}/labels", json={"step": 1, "verdict": "keep"}, headers=h).status_code
        == 201
    )
    assert client.post(f"{url}/presence", json={"seconds": 0}, headers=h).status_code == 204
    assert client.post(f"{url}/presence", json={"seconds": 12.5}, headers=h).status_code == 204
    control = client.post(f"{url}/control", json={"action": "pause"}, headers=h)
    assert control.status_code == 201
    events = store.events(run.run_id, kinds=[Kind.LABEL, Kind.PRESENCE, Kind.CONTROL])
    assert [(e.kind, e.actor) for e in events] == [
        ("label", "ann"),
        ("label", "ann"),
        ("presence", "ann"),
        ("presence", "ann"),
        ("control", "ann"),
    ]
    assert events[0].seq == label.json()["seq"] and events[-1].seq == control.json()["seq"]
    assert events[0].payload == {
        "step": 2,
        "verdict": "mask",
        "reason": "ls again",
        "source": "human",
        "author": "ann",
    }
    assert events[0].step == 2
    got = detail(client, tokens, run.run_id)
    assert got.status == "paused"
    assert [(lb.step, lb.verdict, lb.author) for lb in got.labels] == [
        (2, "mask", "ann"),
        (1, "keep", "ann"),
    ]
    assert [e.payload for e in events if e.kind == Kind.PRESENCE] == [
        {"seconds": 0.0},
        {"seconds": 12.5},
    ]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("guidance", b"{not json"),
        ("guidance", b"[]"),
        ("guidance", b""),
        ("guidance", b'{"text": 5}'),
        ("guidance", b'{"text": "x", "kind": "rant"}'),
        ("guidance", b'{"text": "x", "kidn": "hint"}'),
        ("guidance", b'{"text": "   "}'),
        ("guidance", json.dumps({"text": "x" * 4001}).encode()),
        ("guidance", b'{"text": "x", "drift_from_step": 0}'),
        ("control", b'{"action": "explode"}'),
        ("labels", b'{"step": 1, "verdict": "maybe", "reason": "x"}'),
        ("labels", b'{"step": 99, "verdict": "keep", "reason": "x"}'),
        ("labels", b'{"step": 1, "verdict": "mask", "reason": ""}'),
        ("presence", b'{"seconds": -1}'),
        ("presence", b'{"seconds": 121}'),
        ("presence", b'{"seconds": "NaN"}'),
        ("presence", b'{"seconds": NaN}'),
        ("presence", b'{"seconds": Infinity}'),
        ("presence", b'{"seconds": -Infinity}'),
        ("presence", b'{"seconds": 1e400}'),
        ("labels", b'{"step": 9223372036854775808, "verdict": "keep"}'),
        ("guidance", b'{"text": "x", "drift_from_step": 1180591620717411303424}'),
    ],
)
def test_malformed_writes_are_4xx_and_write_nothing(
    client: TestClient, tokens: Tokens, run: FakeRun, path: str, body: bytes
) -> None:
    before = run.store.last_seq(run.run_id)
    r = client.post(
        f"/api/runs/{run.run_id}/{path}",
        content=body,
        headers={**tokens.bearer("annotator"), "Content-Type": "application/json"},
    )
    assert r.status_code in (400, 422), r.text
    assert r.json()["detail"]
    assert run.store.last_seq(run.run_id) == before


def test_writes_to_an_ended_or_unknown_run(
    client: TestClient, tokens: Tokens, run: FakeRun
) -> None:
    run.finish("stopped")
    assert guide(client, tokens, run.run_id).status_code == 409
    r = client.post(
        f"/api/runs/{run.run_id}/control", json={"action": "resume"}, headers=tokens.bearer("admin")
    )
    assert r.status_code == 409 and "ended" in r.json()["detail"]
    assert guide(client, tokens, "r-nope").status_code == 404
    assert client.get("/api/runs/r-nope", headers=tokens.bearer("viewer")).status_code == 404
    assert client.get("/api/runs/r-nope/events", headers=tokens.bearer("viewer")).status_code == 404


def test_bodies_over_the_limit_get_413(client: TestClient, tokens: Tokens, run: FakeRun) -> None:
    before = run.store.last_seq(run.run_id)
    big = json.dumps({"text": "x" * 70_000, "kind": "hint"})
    r = client.post(
        f"/api/runs/{run.run_id}/guidance",
        content=big,
        headers={**tokens.bearer("annotator"), "Content-Type": "application/json"},
    )
    assert r.status_code == 413 and "64 KiB" in r.json()["detail"]
    assert run.store.last_seq(run.run_id) == before


def test_the_limit_counts_bytes_not_content_length(
    live: LiveServer, tokens: Tokens, run: FakeRun
) -> None:
    """A chunked body has no Content-Length: the server counts what arrives."""
    before = run.store.last_seq(run.run_id)

    def chunks() -> object:
        yield b'{"text": "'
        for _ in range(100):
            yield b"x" * 1024
        yield b'", "kind": "hint"}'

    r = httpx.post(
        f"{live.url}/api/runs/{run.run_id}/guidance",
        content=chunks(),  # type: ignore[arg-type]
        headers={**tokens.bearer("annotator"), "Content-Type": "application/json"},
    )
    assert r.status_code == 413
    assert run.store.last_seq(run.run_id) == before
    small = httpx.post(
        f"{live.url}/api/runs/{run.run_id}/guidance",
        content=iter([b'{"text": "chunked', b' but small"}']),
        headers={**tokens.bearer("annotator"), "Content-Type": "application/json"},
    )
    assert small.status_code == 201


def test_hostile_text_round_trips_as_data(client: TestClient, tokens: Tokens, run: FakeRun) -> None:
    ids = []
    for text in HOSTILE:
        r = guide(client, tokens, run.run_id, text=text)
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    run.act("run", {"command": HOSTILE[0]}, result=HOSTILE[3], thought=HOSTILE[1], error=True)
    got = detail(client, tokens, run.run_id)
    assert [g.text for g in got.guidance] == [t.strip() for t in HOSTILE]
    events = client.get(f"/api/runs/{run.run_id}/events", headers=tokens.bearer("viewer"))
    assert events.headers["content-type"] == "application/json"
    views = EventsResponse.model_validate(events.json()).events
    call, obs = views[-2], views[-1]
    assert call.payload["message"]["content"] == HOSTILE[1]
    assert json.loads(call.payload["message"]["tool_calls"][0]["function"]["arguments"]) == {
        "command": HOSTILE[0]
    }
    assert obs.payload["content"] == HOSTILE[3]
    # The run page embeds no agent or human text: its script fetches it from the API.
    client.post("/api/login", json={"name": "vic", "token": tokens.viewer})
    page = client.get(f"/runs/{run.run_id}").text
    for text in HOSTILE:
        assert text not in page and "alert(" not in page


def test_a_hostile_run_id_is_escaped_in_the_page(
    client: TestClient, tokens: Tokens, store: SQLiteStore
) -> None:
    run_id = "<img src=x onerror=alert(1)>"
    store.create_run("fake-task", {}, run_id=run_id)
    client.post("/api/login", json={"name": "vic", "token": tokens.viewer})
    page = client.get(f"/runs/{run_id}")
    assert page.status_code == 200
    assert run_id not in page.text
    summary = client.get("/api/runs", headers=tokens.bearer("viewer")).json()["runs"][0]
    assert summary["id"] == run_id


def test_events_page_by_seq_with_blobs_expanded(
    client: TestClient, tokens: Tokens, run: FakeRun
) -> None:
    h = tokens.bearer("viewer")
    first = client.get(f"/api/runs/{run.run_id}/events?limit=2", headers=h).json()
    assert [e["seq"] for e in first["events"]] == [1, 2] and first["last_seq"] == 2
    rest = client.get(f"/api/runs/{run.run_id}/events?after=2", headers=h).json()
    assert [e["seq"] for e in rest["events"]] == [3, 4, 5] and rest["last_seq"] == 5
    none = client.get(f"/api/runs/{run.run_id}/events?after=5", headers=h).json()
    assert none == {"events": [], "last_seq": 5}
    kinds = [e["kind"] for e in first["events"] + rest["events"]]
    assert kinds == ["run_started", "model_call", "observation", "model_call", "observation"]
    assert rest["events"][2]["payload"]["content"] == "a.txt"
    assert rest["events"][1]["payload"]["message"]["tool_calls"][0]["function"]["name"] == "run"
    bad = client.get(f"/api/runs/{run.run_id}/events?after=-1", headers=h)
    assert bad.status_code == 422


def test_run_list_summaries_attention_and_cost(
    client: TestClient, tokens: Tokens, store: SQLiteStore
) -> None:
    calm = FakeRun(store, store.create_run("calm-task", {"options": {"max_steps": 10}}).id)
    calm.start({**BUDGET, "steps": 10})  # the agent records its budget after the cap
    calm.act("write_file", {"path": "a.txt", "content": "1"}, usage=(1000, 100))
    calm.submit(42.0)
    stuck = FakeRun(store, store.create_run("stuck-task", {"options": {}}).id, work_per_step_s=900)
    stuck.start()
    stuck.act("session_start", {"command": "sleep 100", "name": "job"}, meta={"session": "job"})
    stuck.act(
        "session_kill", {"id": "job"}, meta={"session": "job", "was_running": True, "runtime_s": 3}
    )
    # Signals are about now: the last three actions are the same failing command.
    for _ in range(3):
        stuck.act("run", {"command": "python train.py"}, error=True, result="Traceback")
    for text in ("one", "two"):
        guide(client, tokens, stuck.run_id, text=text)
    h = tokens.bearer("viewer")
    listed = RunsResponse.model_validate(client.get("/api/runs", headers=h).json())
    assert [r.id for r in listed.runs] == [stuck.run_id, calm.run_id]  # newest first
    by_id = {r.id: r for r in listed.runs}
    c, s = by_id[calm.run_id], by_id[stuck.run_id]
    assert (c.status, c.step, c.max_steps, c.last_score, c.attention) == (
        "running",
        1,
        10,
        42.0,
        [],
    )
    assert c.working_time_left_s == 598.0
    assert (c.cost.prompt_tokens, c.cost.completion_tokens, c.cost.work_s) == (1000, 100, 2.0)
    kinds = {a.kind for a in s.attention}
    assert kinds == {"error_streak", "repeated_action", "session_killed_early"}
    assert s.max_steps == 50 and s.guidance_queued == 2
    # 2 interventions over 5 steps x 900 s = 1.25 h of working time.
    assert s.cost.interventions == 2 and s.cost.interventions_per_hour == 1.6
    assert listed.totals.runs == 2 and listed.totals.prompt_tokens == 1000 + 5 * 120
    assert listed.totals.interventions == 2
    only = client.get("/api/runs?task=calm-task", headers=h).json()
    assert [r["id"] for r in only["runs"]] == [calm.run_id] and only["totals"]["runs"] == 1
    assert client.get("/api/runs?q=STUCK", headers=h).json()["runs"][0]["id"] == stuck.run_id
    by_score = client.get("/api/runs?sort=-score&limit=1", headers=h).json()
    assert [r["id"] for r in by_score["runs"]] == [calm.run_id] and by_score["totals"]["runs"] == 2
    assert client.get("/api/runs?sort=nonsense", headers=h).status_code == 422
    assert client.get("/api/runs?status=finished", headers=h).json()["runs"] == []
    sessions = detail(client, tokens, stuck.run_id).sessions
    assert [(x.id, x.command, x.running) for x in sessions] == [("job", "sleep 100", False)]


def test_long_idle_only_while_running(store: SQLiteStore, run: FakeRun) -> None:
    cache = RunCache(store)
    record = store.get_run(run.run_id)
    assert record is not None
    later = time.time() + LONG_IDLE_S + 60
    [signal] = cache.summary(record, later)["attention"]
    assert signal["kind"] == "long_idle" and "6 min" in signal["detail"]
    assert cache.summary(record, time.time())["attention"] == []
    run.finish()
    record = store.get_run(run.run_id)
    assert record is not None
    assert cache.summary(record, later)["attention"] == []


def test_tasks_and_starting_runs_without_a_runner(
    home: Home, tokens: Tokens, tmp_path: Path
) -> None:
    task = make_task(tmp_path)
    with TestClient(create_app(home, tasks=[task])) as client:
        listed = client.get("/api/tasks", headers=tokens.bearer("viewer")).json()["tasks"]
        assert listed == [
            {
                "id": "fake-task",
                "title": task.spec.title,
                "steps": 50,
                "working_time_s": 600.0,
                "submissions": 2,
            }
        ]
        r = client.post("/api/runs", json={"task": "fake-task"}, headers=tokens.bearer("annotator"))
        assert r.status_code == 503


def test_openapi_lists_the_api(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert "/api/runs/{run_id}/guidance" in paths and "/api/stream" in paths
    assert all(p.startswith("/api/") for p in paths)


def test_seqs_beyond_int64_or_in_other_digits_are_422(
    client: TestClient, tokens: Tokens, run: FakeRun
) -> None:
    h = tokens.bearer("viewer")
    url = f"/api/runs/{run.run_id}"
    for after in (str(2**63), str(2**70), "²", "١٢", "1_0", "NaN", "-1"):
        r = client.get(f"{url}/events", params={"after": after}, headers=h)
        assert r.status_code == 422, (after, r.text)
        assert r.json()["detail"][0]["loc"] == ["query", "after"]
    assert client.get(f"{url}/events", params={"after": str(2**63 - 1)}, headers=h).json() == {
        "events": [],
        "last_seq": 2**63 - 1,
    }
    # Last-Event-ID: "²" passes str.isdigit() but not int(); latin-1 is how HTTP carries it.
    for value in ("²".encode("latin-1"), "١٢".encode(), str(2**63).encode(), b"-3"):
        r = client.get(f"{url}/stream", headers={**h, "Last-Event-ID": value})  # type: ignore[dict-item]
        assert r.status_code == 422, (value, r.text)
        assert r.json()["detail"][0]["loc"] == ["header", "last-event-id"]


def test_totals_rate_is_over_summed_working_time(
    client: TestClient, tokens: Tokens, store: SQLiteStore
) -> None:
    """22 interventions over hours of work are not thousands per hour: the totals' rate is
    the summed interventions over the summed working time, not a sum of per-run rates."""
    quick = FakeRun(store, store.create_run("quick", {"options": {}}).id, work_per_step_s=2)
    slow = FakeRun(store, store.create_run("slow", {"options": {}}).id, work_per_step_s=3598)
    for fake in (quick, slow):
        fake.start()
        fake.act("think", {"thought": "go"})
        guide(client, tokens, fake.run_id)
    listed = client.get("/api/runs", headers=tokens.bearer("viewer")).json()
    rates = {r["id"]: r["cost"]["interventions_per_hour"] for r in listed["runs"]}
    assert rates == {quick.run_id: 1800.0, slow.run_id: 1.001}  # summed: 1801
    totals = listed["totals"]
    assert (totals["interventions"], totals["work_s"]) == (2, 3600.0)
    assert totals["interventions_per_hour"] == 2.0


def test_ended_runs_need_no_attention_and_live_runs_rank_first(
    client: TestClient, tokens: Tokens, store: SQLiteStore
) -> None:
    def failing(task: str) -> FakeRun:
        fake = FakeRun(store, store.create_run(task, {"options": {}}).id)
        fake.start()
        for _ in range(3):
            fake.act("run", {"command": "make"}, error=True, result="error")
        return fake

    ended = failing("ended-task")
    ended.finish("stopped")
    calm = FakeRun(store, store.create_run("calm-task", {"options": {}}).id)
    calm.start()
    stuck = failing("stuck-task")
    h = tokens.bearer("viewer")
    by_id = {r["id"]: r for r in client.get("/api/runs", headers=h).json()["runs"]}
    assert by_id[ended.run_id]["attention"] == []
    assert {a["kind"] for a in by_id[stuck.run_id]["attention"]} == {
        "error_streak",
        "repeated_action",
    }
    ranked = client.get("/api/runs?sort=-attention", headers=h).json()["runs"]
    assert [r["id"] for r in ranked] == [stuck.run_id, calm.run_id, ended.run_id]
    needs = client.get("/api/runs?attention=true", headers=h).json()
    assert [r["id"] for r in needs["runs"]] == [stuck.run_id] and needs["totals"]["runs"] == 1


def _retimed(events: list[Event], times: list[float]) -> list[Event]:
    return [ev._replace(ts=t) for ev, t in zip(events, times, strict=True)]


def test_annotator_and_wall_time_are_measured_not_reported(
    tokens: Tokens, store: SQLiteStore, run: FakeRun
) -> None:
    """The issue's run: 33 s of agent work, then a label and three presence reports of 120 s
    within one second. Annotator time gains at most the real time between reports; wall time
    stays the agent's 33 s. The log's own shape, re-timed to make the times exact."""
    run.finish()
    post_label(store, run.run_id, 1, "keep", "", "ann")
    for seconds in (120, 120, 120):
        post_presence(store, run.run_id, "ann", seconds)
    events = store.events(run.run_id)
    agent = [ev for ev in events if ev.actor == "agent"]
    assert [ev.kind for ev in events[len(agent) :]] == ["label", *["presence"] * 3]
    times = [1000 + 33 * i / (len(agent) - 1) for i in range(len(agent))]
    fold = RunFold()
    for ev in _retimed(events, [*times, 1300.0, 1317.0, 1317.4, 1317.9]):
        fold.apply(ev, {})
    cost = fold.cost()
    assert cost["wall_s"] == 33.0
    assert cost["annotator_seconds"] == 0.9


def test_presence_credits_at_most_the_time_since_the_last_report(store: SQLiteStore) -> None:
    run_id = store.create_run("fake-task", {}).id
    reports = [
        ("ann", 0.0, 1000.0),  # starts watching: nothing to credit yet
        ("ann", 30.0, 1030.0),  # 30 s visible of 30 s
        ("ann", 120.0, 1031.0),  # claims 120 s one second later: 1 s
        ("bob", 120.0, 1031.5),  # another annotator's first report: nothing yet
        ("ann", 20.0, 5000.0),  # back after hours, visible 20 s of them: 20 s
        ("bob", 10.0, 1061.5),  # bob: 10 s visible of 30 s
    ]
    for who, seconds, _ in reports:
        post_presence(store, run_id, who, seconds)
    fold = RunFold()
    for ev in _retimed(store.events(run_id), [t for _, _, t in reports]):
        fold.apply(ev, {})
    assert fold.cost()["annotator_seconds"] == 30 + 1 + 20 + 10


def test_presence_through_the_api_is_capped_by_elapsed_time(
    client: TestClient, tokens: Tokens, run: FakeRun, store: SQLiteStore
) -> None:
    h = tokens.bearer("annotator")
    for _ in range(3):
        r = client.post(f"/api/runs/{run.run_id}/presence", json={"seconds": 120}, headers=h)
        assert r.status_code == 204
    ts = [ev.ts for ev in store.events(run.run_id, kinds=[Kind.PRESENCE])]
    elapsed = sum(min(120.0, b - a) for a, b in itertools.pairwise(ts))
    got = detail(client, tokens, run.run_id).cost.annotator_seconds
    assert got == round(elapsed, 3) and got < 120


def test_the_last_admin_cannot_be_revoked(client: TestClient, tokens: Tokens) -> None:
    admin = tokens.bearer("admin")
    r = client.delete("/api/annotators/ada", headers=admin)
    assert r.status_code == 409 and "last admin" in r.json()["detail"]
    assert client.get("/api/me", headers=admin).status_code == 200
    added = client.post("/api/annotators", json={"name": "bea", "role": "admin"}, headers=admin)
    bea = {"Authorization": f"Bearer {added.json()['token']}"}
    # With another admin, revoking oneself is fine; that one is then the last.
    assert client.delete("/api/annotators/ada", headers=admin).status_code == 200
    assert client.get("/api/me", headers=admin).status_code == 401
    last = client.delete("/api/annotators/bea", headers=bea)
    assert last.status_code == 409 and "apollo annotators add" in last.json()["detail"]
    assert client.delete("/api/annotators/nobody", headers=bea).status_code == 404
    # Revoking annotators who are not admins is never refused.
    assert client.delete("/api/annotators/ann", headers=bea).status_code == 200


def test_admins_configure_model_endpoints(client: TestClient, tokens: Tokens) -> None:
    admin = tokens.bearer("admin")
    body = {"url": "http://127.0.0.1:9/v1", "model_name": "qwen", "api_key_env": "QWEN_KEY"}
    r = client.put("/api/endpoints/local-qwen", json=body, headers=admin)
    assert r.status_code == 200, r.text
    assert r.json() == {"name": "local-qwen", **body}
    listed = client.get("/api/endpoints", headers=tokens.bearer("annotator")).json()
    assert listed == {"endpoints": [{"name": "local-qwen", **body}], "default": "embedded"}
    for name, bad in (
        ("x", {**body, "url": "file:///etc/passwd"}),
        ("x", {**body, "api_key_env": "NOT A VAR"}),
        ("x", {**body, "url": "http://host/v1\x1b[2J"}),
        ("x", {**body, "model_name": "qwen\u202e"}),
        ("embedded", body),
        ("bad name", body),
    ):
        r = client.put(f"/api/endpoints/{name}", json=bad, headers=admin)
        assert r.status_code == 422, (name, bad, r.text)
    assert (
        client.put("/api/endpoints/x", json=body, headers=tokens.bearer("annotator")).status_code
        == 403
    )
    assert client.delete("/api/endpoints/local-qwen", headers=admin).status_code == 200
    assert client.delete("/api/endpoints/local-qwen", headers=admin).status_code == 404
    assert client.get("/api/endpoints", headers=admin).json()["endpoints"] == []


def test_a_write_to_a_store_another_process_keeps_locked_is_503(
    home: Home, tokens: Tokens, run: FakeRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(BUSY_ENV, "0.5")  # the app's own store gives up quickly
    with TestClient(create_app(home, tasks=[])) as busy_client, LockHolder(home.db_path) as holder:
        before = run.store.last_seq(run.run_id)
        holder.lock()
        r = guide(busy_client, tokens, run.run_id)
        holder.release()
        assert r.status_code == 503, r.text
        assert "busy" in r.json()["detail"] and r.headers["Retry-After"]
        assert run.store.last_seq(run.run_id) == before  # nothing was written
        assert guide(busy_client, tokens, run.run_id).status_code == 201  # free again


def test_a_failed_evaluation_is_shown_as_such_and_keeps_the_last_score(
    client: TestClient, tokens: Tokens, run: FakeRun
) -> None:
    run.submit(40.0)
    failed = {"n": 2, "score": None, "status": "evaluator_error", "error": "exit 1", "final": False}
    run.append(NewEvent(Kind.SUBMISSION, failed, step=2))
    d = detail(client, tokens, run.run_id)
    assert [(s.score, s.status) for s in d.submissions] == [
        (40.0, "scored"),
        (None, "evaluator_error"),
    ]
    assert d.submissions[1].error == "exit 1"
    record = run.store.get_run(run.run_id)
    assert record is not None and record.last_score == 40.0  # not erased by the failure


def test_the_console_subscribes_to_every_event_kind() -> None:
    """The run page's EventSource listens by kind name: a kind missing from its list would
    never reach the page (an LLM annotator's decisions, say)."""
    script = (Path(apollo.server.__file__).parent / "static" / "run.js").read_text()
    listed = re.search(r"const KINDS = \[(.*?)\];", script, re.S)
    assert listed is not None
    assert set(re.findall(r'"([a-z_]+)"', listed.group(1))) == {k.value for k in Kind}
