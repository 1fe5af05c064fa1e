"""The web console in a real browser (Debian's chromium through Playwright), against the real
app under uvicorn, a SQLite home and runs driven by the server's runner against scripted
OpenAI-compatible model servers over loopback HTTP.

Every test also fails on an uncaught page error or a Content-Security-Policy violation, so the
pages are checked to work under the strict CSP (no inline script or style) throughout."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from apollo.llm.scripted import ScriptedServer, call, error, reply
from apollo.log.writes import post_guidance
from tests.server.browser_support import (
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    Console,
    require_browser_tools,
    serve_console,
    thinking,
)
from tests.server.fakelog import FakeRun

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.browser

HOSTILE_TITLE = "<script>alert('title')</script><img src=x onerror=alert('title-img')>"
HOSTILE_FILE = "<img src=x onerror=alert('file')>.txt"
HOSTILE_TEXT = (
    "<script>alert('guidance')</script><img src=x onerror=alert('guidance-img')> "
    "[see](javascript:alert('guidance-link')) <a href=\"javascript:alert('a')\">a</a>"
)
# What the inert-check script counts: anything that would mean data became markup.
INJECTED = """() => {
  const handlers = [...document.querySelectorAll("*")].flatMap((el) =>
    [...el.attributes].filter((a) => a.name.toLowerCase().startsWith("on")).map((a) => a.name));
  return {
    scripts: [...document.scripts].map((s) => s.getAttribute("src")),
    images: document.images.length,
    iframes: document.querySelectorAll("iframe, object, embed").length,
    handlers,
    jsLinks: [...document.querySelectorAll("a")]
      .filter((a) => !a.getAttribute("href") || !a.getAttribute("href").startsWith("/")).length,
  };
}"""


@dataclass
class Watched:
    """A page plus what it did that a test must know about."""

    page: Page
    dialogs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    yield from serve_console(tmp_path_factory.mktemp("console"), HOSTILE_TITLE)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    require_browser_tools()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def open_page(browser: Browser, **context: Any) -> Watched:
    page = browser.new_context(viewport={"width": 1440, "height": 900}, **context).new_page()
    page.set_default_timeout(15_000)
    watched = Watched(page)

    def on_dialog(dialog: Any) -> None:
        watched.dialogs.append(dialog.message)
        dialog.dismiss()

    def on_console(message: Any) -> None:
        if message.type == "error" and "Content Security Policy" in message.text:
            watched.errors.append(message.text)

    page.on("dialog", on_dialog)
    page.on("console", on_console)
    page.on("pageerror", lambda exc: watched.errors.append(str(exc)))
    return watched


@pytest.fixture
def watched(browser: Browser, console: Console) -> Iterator[Watched]:
    w = open_page(browser)
    yield w
    w.page.context.close()
    console.stop_runs()
    assert w.errors == [], f"the page had errors or CSP violations: {w.errors}"


def login(w: Watched, console: Console, name: str) -> None:
    """Logs in through the login form, as a person would."""
    from playwright.sync_api import expect

    page = w.page
    page.goto(f"{console.base_url}/")
    expect(page).to_have_url(re.compile(r"/login\?next=/$"))
    page.fill("#login-name", name)
    page.fill("#login-token", console.tokens[name])
    page.click("#login-submit")
    expect(page).to_have_url(f"{console.base_url}/")


def open_run(w: Watched, console: Console, run_id: str, min_step: int = 1) -> None:
    """Opens a run's view once its timeline shows `min_step`."""
    w.page.goto(f"{console.base_url}/runs/{run_id}")
    w.page.locator(f'article.step[data-step="{min_step}"]').wait_for()


def shown_step(page: Page, run_id: str) -> int:
    """The step a dashboard row shows."""
    cell = page.locator(f'#runs-body tr[data-id="{run_id}"] td').nth(3)
    return int(cell.inner_text().split("/")[0].strip())


def assert_inert(w: Watched) -> None:
    """No dialog fired and nothing from the data became markup."""
    found = w.page.evaluate(INJECTED)
    assert w.dialogs == [], f"a dialog fired: {w.dialogs}"
    assert len(found["scripts"]) == 1 and found["scripts"][0].startswith("/static/"), found
    assert found["images"] == 0 and found["iframes"] == 0, found
    assert found["handlers"] == [], found
    assert found["jsLinks"] == 0, found


def test_login_and_dashboard_updates_live(watched: Watched, console: Console) -> None:
    """A wrong token is refused with a message; the right one opens the dashboard. A run
    started from the dashboard's form shows up and its step counter moves with no reload;
    filters and sorting work in place; logging out sends every page back to the login."""
    from playwright.sync_api import expect

    page = watched.page
    page.goto(f"{console.base_url}/login")
    page.fill("#login-name", "alice")
    page.fill("#login-token", "not-the-token")
    page.click("#login-submit")
    expect(page.locator("#login-status")).to_have_text("Wrong name or token.")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "login.png"))
    login(watched, console, "alice")
    expect(page.locator("#whoami")).to_have_text("alice · annotator")
    expect(page.locator("#live")).to_have_text("live")

    model = ScriptedServer(default=thinking(0.25)).start()
    endpoint = console.endpoint(model)
    page.reload()  # the form lists the endpoints configured when the page loads
    page.click("#start-toggle")
    page.select_option("#start-task", console.task.id)
    page.select_option("#start-model", endpoint)
    page.fill("#start-max-steps", "300")
    page.click("#start-form button[type=submit]")
    started = page.locator("#start-status a")
    expect(started).to_be_visible()
    run_id = started.inner_text()
    console.models[run_id] = model

    page.evaluate("window.__same_page = true")
    row = page.locator(f'#runs-body tr[data-id="{run_id}"]')
    expect(row).to_be_visible()
    expect(row.locator("td").nth(2)).to_have_text("running")
    first = shown_step(page, run_id)
    page.wait_for_function(
        """([id, n]) => {
          const cell = document.querySelector(`#runs-body tr[data-id="${id}"] td:nth-child(4)`);
          return cell && parseInt(cell.textContent, 10) >= n;
        }""",
        arg=[run_id, first + 3],
    )
    assert page.evaluate("window.__same_page") is True  # moved live, not by a reload

    # Filters and sorting act on the rows in place.
    page.fill("#filter-text", "no-such-run")
    expect(row).to_be_hidden()
    page.fill("#filter-text", run_id[:6])
    expect(row).to_be_visible()
    page.locator('th[data-key="step"] button').click()
    expect(page.locator('th[data-key="step"]')).to_have_attribute("aria-sort", "descending")

    # Logging out ends the session: the pages send the browser back to the login form.
    page.click("#logout")
    expect(page).to_have_url(f"{console.base_url}/login")
    page.goto(f"{console.base_url}/runs/{run_id}")
    expect(page).to_have_url(re.compile(r"/login\?next=/runs/"))


def test_guidance_is_queued_then_delivered_into_the_next_model_input(
    watched: Watched, console: Console
) -> None:
    """Guidance sent from the composer (Ctrl+Enter, with a drift step picked by clicking the
    timeline) shows as queued while the run is paused, then as delivered at step N once it
    resumes; the model request of step N carries it as the <real_user> turn, exactly."""
    from playwright.sync_api import expect

    run_id = console.start_run(default=thinking(0.2))
    login(watched, console, "alice")
    open_run(watched, console, run_id, min_step=2)
    page = watched.page
    console.control(run_id, "pause")
    expect(page.locator("#run-status")).to_have_text("paused")

    text = "Stop re-reading the spec: test touching intervals [1, 3) and [3, 5) next."
    page.locator('article.step[data-step="2"] button.step-no').click()
    expect(page.locator("#drift-label")).to_have_text("drifted since step 2")
    page.select_option("#guidance-kind", "correction")
    page.fill("#guidance-text", text)
    page.press("#guidance-text", "Control+Enter")

    status = page.locator("#guidance-status")
    expect(status).to_have_text("Queued: the agent receives it at its next step.")
    card = page.locator("article.guidance").filter(has_text=text)
    expect(card).to_have_attribute("data-state", "queued")
    expect(card.locator(".state")).to_have_text("queued")
    expect(card).to_contain_text("drifted since step 2")
    expect(page.locator("#drift")).to_be_hidden()  # cleared once sent

    console.control(run_id, "resume")
    expect(card).to_have_attribute("data-state", "delivered")
    delivered = card.locator(".state").inner_text()
    step = int(re.fullmatch(r"delivered at step (\d+)", delivered).group(1))  # type: ignore[union-attr]
    expect(status).to_have_text(f"Your guidance was delivered at step {step}.")
    expect(page.locator(f'article.step[data-step="{step}"] .entry.delivered')).to_contain_text(
        "delivered to the agent"
    )

    # The model input of step N: its last message is the guidance, after step N-1's result.
    turn = {"role": "user", "content": f"<real_user>{text}</real_user>"}
    requests = [r.body for r in console.models[run_id].requests]
    carrying = [i for i, body in enumerate(requests) if turn in body["messages"]]
    assert carrying, "no model request carried the guidance"
    first = requests[carrying[0]]["messages"]
    assert first[-1] == turn
    assert first[-2]["role"] == "tool" and f"[step {step - 1}/" in first[-2]["content"]
    assert carrying == list(range(carrying[0], len(requests)))  # and it stays in context

    [guidance] = console.events(run_id, "guidance")
    assert guidance.actor == "alice"
    assert guidance.payload["text"] == text
    assert guidance.payload["kind"] == "correction"
    assert guidance.payload["drift_from_step"] == 2


def test_pause_holds_the_run_and_resume_moves_it(watched: Watched, console: Console) -> None:
    """Pause from the run view: the status turns paused, the buttons follow, and the step
    counter holds; resume: running again and the steps move on."""
    from playwright.sync_api import expect

    run_id = console.start_run(default=thinking(0.2))
    login(watched, console, "alice")
    open_run(watched, console, run_id, min_step=2)
    page = watched.page
    expect(page.locator("#ctl-resume")).to_be_disabled()

    page.click("#ctl-pause")
    expect(page.locator("#run-status")).to_have_text("paused")
    expect(page.locator("#ctl-pause")).to_be_disabled()
    expect(page.locator("#ctl-resume")).to_be_enabled()
    expect(page.locator(".note.control-pause")).to_contain_text("Paused by alice")
    page.wait_for_timeout(1000)  # the step in flight at the pause ends at its boundary
    held = console.run(run_id)["step"]
    page.wait_for_timeout(1500)
    assert console.run(run_id)["step"] == held
    expect(page.locator(f'article.step[data-step="{held + 1}"]')).to_have_count(0)

    page.click("#ctl-resume")
    expect(page.locator("#run-status")).to_have_text("running")
    page.locator(f'article.step[data-step="{held + 2}"]').wait_for()
    assert console.run(run_id)["step"] >= held + 2


def test_label_an_action_keep_and_mask(watched: Watched, console: Console) -> None:
    """Keep and mask with a reason from the timeline: the chips show at once, survive a
    reload (they come from the log), and the log holds who labelled what and why. Leaving
    the page reports the time spent watching (presence)."""
    from playwright.sync_api import expect

    run_id = console.start_run(default=thinking(0.3))
    login(watched, console, "alice")
    open_run(watched, console, run_id, min_step=3)
    page = watched.page

    def label(step: int, verdict: str, reason: str) -> None:
        card = page.locator(f'article.step[data-step="{step}"]')
        card.locator("button.label-open").click()
        card.locator("input.reason").fill(reason)
        card.locator(f"button.btn-{verdict}").click()
        expect(card.locator(f".labels .verdict-{verdict}")).to_have_text(
            f"{verdict} · {reason} · alice"
        )

    # An empty reason is refused in the form, before anything is sent.
    card1 = page.locator('article.step[data-step="1"]')
    card1.locator("button.label-open").click()
    card1.locator("button.btn-keep").click()
    expect(card1.locator(".label-form .status-line")).to_have_text("Say why.")
    label(1, "keep", "a sound plan")
    label(2, "mask", "re-reads what it already knows")
    expect(page.locator('article.step[data-step="2"]')).to_have_class(re.compile(r"\bmasked\b"))

    page.reload()
    for step, verdict in ((1, "keep"), (2, "mask")):
        chips = page.locator(f'article.step[data-step="{step}"] .labels .verdict-{verdict}')
        expect(chips).to_have_count(1)

    # Leaving the run view reports the time spent in it (annotator time in the cost).
    page.wait_for_timeout(1500)
    page.goto(f"{console.base_url}/")
    detail = console.wait_run(run_id, lambda d: d["cost"]["annotator_seconds"] >= 1)
    assert detail["cost"]["annotator_seconds"] < 120
    assert {e.actor for e in console.events(run_id, "presence")} == {"alice"}

    labels = {e.payload["step"]: e for e in console.events(run_id, "label")}
    assert labels[1].payload["verdict"] == "keep"
    assert labels[1].payload["reason"] == "a sound plan"
    assert labels[2].payload["verdict"] == "mask"
    assert labels[2].payload["reason"] == "re-reads what it already knows"
    for e in labels.values():
        assert e.actor == "alice" and e.payload["source"] == "human"


def test_hostile_payloads_stay_inert(watched: Watched, console: Console) -> None:
    """Script tags, event-handler attributes and javascript: links in a task title, the
    agent's thought, a file name, a tool output and guidance render as visible text: no
    dialog fires and no element is injected. Control characters show as symbols."""
    from playwright.sync_api import expect

    shell_output = (
        "printf '%s\\033[31m red\\n' "
        "\"<script>alert('obs')</script><img src=x onerror=alert('obs-img')>"
        "<a href=javascript:alert('obs-link')>x</a>\"; ls"
    )
    script = [
        reply(
            "<script>alert('thought')</script>",
            tool_calls=[
                call("write_file", {"path": HOSTILE_FILE, "content": "<script>alert(1)</script>"})
            ],
        ),
        reply(
            "<b onmouseover=alert('b')>bold?</b>",
            tool_calls=[call("run", {"command": shell_output})],
        ),
        reply("listing", tool_calls=[call("list_files", {"path": "."})]),
    ]
    run_id = console.start_run(script, default=thinking(0.3))
    login(watched, console, "alice")
    page = watched.page
    expect(page.locator("#start-task option").first).to_contain_text(HOSTILE_TITLE)
    assert_inert(watched)

    open_run(watched, console, run_id, min_step=4)
    page.fill("#guidance-text", HOSTILE_TEXT + " \x1b[2J \u202e")
    page.click("#guidance-send")
    card = page.locator("article.guidance").filter(has_text="alert('guidance')")
    expect(card.locator(".prose")).to_have_text(
        HOSTILE_TEXT + " \u241b[2J \ufffd", use_inner_text=True
    )
    timeline = page.locator("#timeline")
    expect(timeline).to_contain_text("<script>alert('thought')</script>")
    expect(timeline).to_contain_text("<b onmouseover=alert('b')>bold?</b>")
    expect(timeline).to_contain_text(HOSTILE_FILE)  # in the action and in the listing
    expect(timeline).to_contain_text("<img src=x onerror=alert('obs-img')>")
    expect(timeline).to_contain_text("\u241b[31m red")  # the terminal escape, made visible
    for button in page.locator("#timeline button.expand").all():
        button.click()  # expanded outputs are text too
    page.mouse.move(400, 400)
    page.wait_for_timeout(500)  # let any injected handler have its chance
    assert_inert(watched)


def test_model_retries_show_in_their_step_and_in_the_cost(
    watched: Watched, console: Console
) -> None:
    """A model endpoint that fails twice before answering: each retry shows in the step it
    delays, saying how long the model has not answered and what happens next, and the run's
    cost counts them."""
    from playwright.sync_api import expect

    run_id = console.start_run([error(503, message="overloaded"), error(503)])
    login(watched, console, "alice")
    open_run(watched, console, run_id, min_step=1)
    page = watched.page
    step = page.locator('article.step[data-step="1"]')
    expect(step.locator(".entry.warn")).to_have_count(2)
    expect(step).to_contain_text(re.compile(r"Model not answering for \d+s: retry 1 \(gives up"))
    expect(step).to_contain_text("retry 1 (gives up after 5m 00s)")
    expect(step).to_contain_text("HTTP 503")
    expect(step).to_contain_text("overloaded")
    expect(step).to_contain_text("retry 2 (gives up after 5m 00s)")
    expect(page.locator("#cost")).to_contain_text("Model retries")
    assert console.run(run_id)["cost"]["model_retries"] == 2
    assert_inert(watched)


def test_viewer_reads_but_cannot_write(watched: Watched, console: Console) -> None:
    """A viewer sees the runs and the timeline but gets no write controls at all, and a
    write forced through fetch (with a valid CSRF token) is refused with 403."""
    from playwright.sync_api import expect

    run_id = console.start_run(default=thinking(0.3))
    login(watched, console, "vera")
    page = watched.page
    expect(page.locator(f'#runs-body tr[data-id="{run_id}"]')).to_be_visible()
    expect(page.locator("#start-toggle")).to_be_hidden()
    expect(page.locator("#start-form")).to_have_count(0)

    open_run(watched, console, run_id, min_step=2)
    for absent in ("#composer", "#controls", "button.label-open", "button.step-no"):
        expect(page.locator(absent)).to_have_count(0)
    statuses = page.evaluate(
        """async (id) => {
          const me = await (await fetch("/api/me")).json();
          const post = (path, body) => fetch(`/api/runs/${id}/${path}`, {
            method: "POST",
            headers: {"Content-Type": "application/json", "X-CSRF-Token": me.csrf_token},
            body: JSON.stringify(body),
          }).then((r) => r.status);
          return {
            role: me.role,
            guidance: await post("guidance", {text: "sneaky", kind: "hint"}),
            control: await post("control", {action: "stop"}),
            label: await post("labels", {step: 1, verdict: "mask", reason: "x"}),
          };
        }""",
        run_id,
    )
    assert statuses == {"role": "viewer", "guidance": 403, "control": 403, "label": 403}
    assert console.events(run_id, "guidance", "control", "label") == []


def test_console_screenshots(browser: Browser, watched: Watched, console: Console) -> None:
    """Several runs in different states: attention badges on the one that keeps failing,
    paused and stopped runs, and a run with guidance, labels, a session and a score. Saves
    screenshots of the dashboard and the run view (light and dark) to test-artifacts/."""
    from playwright.sync_api import expect

    failing = console.start_run(
        default=reply(
            "Reading the data file.",
            tool_calls=[call("read_file", {"path": "data.csv"})],
            delay=0.4,
        )
    )
    paused = console.start_run(default=thinking(0.3))
    stopped = console.start_run(default=thinking(0.3))
    job = "for i in $(seq 1 600); do echo epoch $i loss 0.$((900 - i)); sleep 1; done"
    listing = "python3 -c \"[print(f'{i:4d} interval [{i}, {i + 3})') for i in range(60)]\""
    busy = console.start_run(
        [
            reply(
                "I will start the long benchmark first, then work while it runs.",
                tool_calls=[call("session_start", {"command": job, "name": "bench"})],
            ),
            reply(
                "Write a first answer.",
                tool_calls=[call("write_file", {"path": "answer.txt", "content": "42"})],
            ),
            reply("Score it once.", tool_calls=[call("submit", {"note": "baseline"})]),
            reply("Check how the intervals print.", tool_calls=[call("run", {"command": listing})]),
        ],
        default=thinking(0.5),
    )
    console.wait_run(failing, lambda d: len(d["attention"]) >= 2)
    console.wait_run(busy, lambda d: d["step"] >= 5 and d["last_score"] is not None)
    console.control(paused, "pause")
    console.control(stopped, "stop")
    console.wait_run(stopped, lambda d: d["status"] == "stopped")
    with console.client() as api:
        api.post(
            f"/api/runs/{busy}/guidance",
            json={
                "text": "The benchmark takes about ten minutes: keep it running and work on "
                "the merge logic meanwhile.",
                "kind": "strategy",
                "drift_from_step": 3,
            },
        )
        api.post(
            f"/api/runs/{busy}/labels",
            json={"step": 2, "verdict": "keep", "reason": "starts the long job early"},
        )
    console.wait_run(busy, lambda d: d["guidance"] and d["guidance"][0]["state"] == "delivered")

    login(watched, console, "alice")
    page = watched.page
    badges = page.locator(f'#runs-body tr[data-id="{failing}"] .attn')
    expect(badges.filter(has_text="errors")).to_be_visible()
    expect(badges.filter(has_text="repeating")).to_be_visible()
    expect(page.locator(f'#runs-body tr[data-id="{paused}"] td').nth(2)).to_have_text("paused")
    expect(page.locator(f'#runs-body tr[data-id="{stopped}"] td').nth(2)).to_have_text("stopped")
    expect(page.locator(f'#runs-body tr[data-id="{busy}"] td').nth(5)).to_have_text("42")
    page.locator("#start-toggle").click()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"))

    open_run(watched, console, busy, min_step=5)
    expect(page.locator("#sessions")).to_contain_text("bench")
    page.locator('article.step[data-step="3"] button.step-no').click()
    page.fill("#guidance-text", "Try a sorted list with bisect before anything fancier.")
    page.locator('article.step[data-step="4"]').evaluate("(el) => el.scrollIntoView()")
    page.screenshot(path=str(ARTIFACTS / "run.png"))

    dark = open_page(browser, color_scheme="dark")
    dark.page.context.add_cookies(page.context.cookies())
    open_run(dark, console, busy, min_step=5)
    dark.page.screenshot(path=str(ARTIFACTS / "run-dark.png"))
    dark.page.context.close()
    assert dark.errors == []
    for name in ("dashboard.png", "run.png", "run-dark.png"):
        assert Path(ARTIFACTS / name).stat().st_size > 10_000


def test_pages_load_only_static_scripts_and_styles(console: Console) -> None:
    """Every page loads its script and styles from /static only, with no inline script,
    style or handler (the CSP would block them), and the files it names are served."""
    import httpx

    run_id = console.start_run(default=thinking(0.3))
    with httpx.Client(base_url=console.base_url) as client:
        login = client.post("/api/login", json={"name": "vera", "token": console.tokens["vera"]})
        assert login.status_code == 200, login.text
        pages = {
            "/login": "login.js",
            "/": "dashboard.js",
            f"/runs/{run_id}": "run.js",
        }
        for path, script in pages.items():
            page = client.get(path)
            assert page.status_code == 200, path
            assert "script-src 'self'" in page.headers["content-security-policy"]
            html = page.text
            assert re.findall(r"<script[^>]*>", html) == [
                f'<script type="module" src="/static/{script}">'
            ], path
            assert not re.search(r"<style|\sstyle=|\son[a-z]+=|javascript:", html), path
        for name in [*re.findall(r'from "\./([a-z]+\.js)"', _static_sources()), "app.css"]:
            assert client.get(f"/static/{name}").status_code == 200, name
    console.stop_runs()


def _static_sources() -> str:
    static = Path(__file__).resolve().parents[2] / "apollo" / "server" / "static"
    return "\n".join(p.read_text() for p in sorted(static.glob("*.js")))


@pytest.fixture
def big_console(tmp_path: Path) -> Iterator[Console]:
    """A console of its own holding 1,000 runs that were created but never driven."""
    for console in serve_console(tmp_path, "A task"):
        with console.home.open_store() as store:
            for _ in range(1000):
                store.create_run(console.task.id, {"task_path": str(console.task.path)})
        yield console


def test_dashboard_stays_fast_with_a_thousand_runs(browser: Browser, big_console: Console) -> None:
    """1,000 runs render promptly, and while one of them moves, only its row is touched."""
    w = open_page(browser)
    try:
        live = big_console.start_run(default=thinking(0.2))
        login(w, big_console, "alice")
        page = w.page
        page.wait_for_function("() => document.querySelectorAll('#runs-body tr').length === 1001")
        loaded = page.evaluate("performance.now()")
        assert loaded < 5000, f"the dashboard took {loaded:.0f} ms to show 1,000 runs"
        touched = page.evaluate(
            """() => new Promise((done) => {
              const rows = new Set();
              const observer = new MutationObserver((records) => {
                for (const r of records) {
                  const row = (r.target.nodeType === 1 ? r.target : r.target.parentElement)
                    .closest("tr");
                  if (row) rows.add(row.dataset.id);
                }
              });
              const body = document.getElementById("runs-body");
              observer.observe(body, {subtree: true, childList: true, characterData: true,
                attributes: true});
              setTimeout(() => { observer.disconnect(); done([...rows]); }, 2000);
            })"""
        )
        assert touched == [live], f"rows touched while one run moved: {len(touched)}"
        page.fill("#filter-text", live[-6:])
        expect_rows = page.locator("#runs-body tr")
        from playwright.sync_api import expect

        expect(expect_rows).to_have_count(1)
        assert w.errors == [] and w.dialogs == []
    finally:
        w.page.context.close()
        big_console.stop_runs()


def _fake_run(console: Console, task: str, steps: int, work_per_step_s: float = 2.0) -> FakeRun:
    """A run written straight into the console's store, as an agent would (nothing drives
    it: it is not queued), so the test decides exactly what its log holds."""
    store = console.home.open_store()
    fake = FakeRun(store, store.create_run(task, {"options": {}}).id, work_per_step_s)
    fake.start()
    for _ in range(steps):
        fake.act("think", {"thought": "go on"})
    return fake


def test_totals_row_is_the_apis_and_needs_attention_lists_live_runs(
    watched: Watched, console: Console
) -> None:
    """The totals row's interventions per hour is the API's total over the shown runs, not a
    sum of their rates; "Needs attention" lists only live runs, and they rank first."""
    from playwright.sync_api import expect

    quick = _fake_run(console, "totals-task", 1, work_per_step_s=2)
    slow = _fake_run(console, "totals-task", 1, work_per_step_s=3598)
    for fake in (quick, slow):
        post_guidance(fake.store, fake.run_id, "alice", "look at the data first")
    ended = _fake_run(console, "attention-task", 0)
    for _ in range(3):
        ended.act("run", {"command": "make"}, error=True, result="error")
    ended.finish("stopped")
    calm = _fake_run(console, "attention-task", 1)
    stuck = _fake_run(console, "attention-task", 0)
    for _ in range(3):
        stuck.act("run", {"command": "make"}, error=True, result="error")

    login(watched, console, "alice")
    page = watched.page
    page.select_option("#filter-task", "totals-task")
    expect(page.locator("#runs-body tr")).to_have_count(2)
    with console.client() as api:
        totals = api.get("/api/runs", params={"task": "totals-task"}).json()["totals"]
    assert totals["interventions_per_hour"] == 2.0  # per-run rates: 1800 and 1.001
    cells = page.locator("#runs-totals td")
    expect(cells.nth(3)).to_have_text("2")
    expect(page.locator("#runs-totals th")).to_have_text("Totals · 2 runs")

    page.select_option("#filter-task", "attention-task")
    rows = page.locator("#runs-body tr")
    expect(rows).to_have_count(3)
    order = [rows.nth(i).get_attribute("data-id") for i in range(3)]
    assert order == [stuck.run_id, calm.run_id, ended.run_id]
    page.check("#filter-attention")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-id", stuck.run_id)
    expect(cells.nth(3)).to_have_text("0")  # the totals follow the filter
    expect(page.locator("#runs-totals th")).to_have_text("Totals · 1 runs")
    for fake in (quick, slow, ended, calm, stuck):
        fake.finish("stopped")
        fake.store.close()


def test_run_header_shows_the_latest_step_shown(watched: Watched, console: Console) -> None:
    """Guidance delivered at the start of step 6 opens step 6 in the timeline before the
    model's step-6 call is logged: the header says step 6 too, not the detail's 5."""
    from playwright.sync_api import expect

    fake = _fake_run(console, "header-task", 5)
    guidance = post_guidance(fake.store, fake.run_id, "alice", "check the edge cases")
    fake.deliver(guidance.payload["id"])
    login(watched, console, "alice")
    open_run(watched, console, fake.run_id, min_step=6)
    expect(watched.page.locator("#run-step")).to_have_text("step 6 / 50")
    expect(watched.page.locator("#state-step")).to_have_text("6 / 50")
    fake.act("think", {"thought": "step six"})
    fake.act("think", {"thought": "step seven"})
    watched.page.locator('article.step[data-step="7"]').wait_for()
    expect(watched.page.locator("#run-step")).to_have_text("step 7 / 50")
    fake.finish("stopped")
    fake.store.close()
