"""Auth on every route: 401 without credentials, 403 below the route's role, CSRF on cookie
writes, sessions, and HTML pages that redirect to the login form."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from apollo.rollout.home import Home
from apollo.server.app import create_app
from apollo.server.auth import CSRF_HEADER, SESSION_COOKIE, LoginLimit, LoginLimiter
from tests.server.conftest import Tokens
from tests.server.fakelog import FakeRun

ROLES = ("viewer", "annotator", "admin")
# Every API route and the least role it needs (None: public). A new route must be added here.
EXPECTED: dict[tuple[str, str], str | None] = {
    ("POST", "/api/login"): None,
    ("POST", "/api/logout"): "viewer",
    ("GET", "/api/me"): "viewer",
    ("GET", "/api/runs"): "viewer",
    ("POST", "/api/runs"): "annotator",
    ("GET", "/api/runs/{run_id}"): "viewer",
    ("GET", "/api/runs/{run_id}/events"): "viewer",
    ("GET", "/api/runs/{run_id}/stream"): "viewer",
    ("GET", "/api/stream"): "viewer",
    ("POST", "/api/runs/{run_id}/guidance"): "annotator",
    ("POST", "/api/runs/{run_id}/control"): "annotator",
    ("POST", "/api/runs/{run_id}/labels"): "annotator",
    ("POST", "/api/runs/{run_id}/presence"): "annotator",
    ("GET", "/api/tasks"): "viewer",
    ("GET", "/api/annotators"): "admin",
    ("POST", "/api/annotators"): "admin",
    ("DELETE", "/api/annotators/{name}"): "admin",
    ("GET", "/api/endpoints"): "annotator",
    ("PUT", "/api/endpoints/{name}"): "admin",
    ("DELETE", "/api/endpoints/{name}"): "admin",
}
BODIES: dict[str, Any] = {
    "/api/runs": {"task": "fake-task"},
    "/api/runs/{run_id}/guidance": {"text": "try the other file", "kind": "hint"},
    "/api/runs/{run_id}/control": {"action": "pause"},
    "/api/runs/{run_id}/labels": {"step": 1, "verdict": "keep", "reason": "fine"},
    "/api/runs/{run_id}/presence": {"seconds": 30},
    "/api/annotators": {"name": "newcomer", "role": "viewer"},
    "/api/endpoints/{name}": {"url": "http://127.0.0.1:9/v1", "model_name": "m"},
}
STREAMS = {"/api/runs/{run_id}/stream", "/api/stream"}


def flat_routes(routes: list[Any]) -> list[Any]:
    """Routes, with those of included routers (FastAPI keeps them nested) spelled out."""
    out = []
    for route in routes:
        nested = getattr(route, "original_router", None)
        out += flat_routes(nested.routes) if nested is not None else [route]
    return out


def app_routes(client: TestClient) -> set[tuple[str, str]]:
    routes = set()
    for route in flat_routes(client.app.routes):  # type: ignore[attr-defined]
        if isinstance(route, APIRoute) and route.path.startswith("/api"):
            routes |= {(m, route.path) for m in route.methods}
    return routes


def test_every_api_route_is_in_the_table(client: TestClient) -> None:
    assert app_routes(client) == set(EXPECTED)


def _url(path: str, run: FakeRun) -> str:
    return path.replace("{run_id}", run.run_id).replace("{name}", "vic")


def _call(client: TestClient, method: str, path: str, run: FakeRun, **kw: Any) -> Any:
    return client.request(method, _url(path, run), json=BODIES.get(path), **kw)


@pytest.mark.parametrize(("method", "path"), sorted(k for k, v in EXPECTED.items() if v))
def test_unauthenticated_gets_401_and_no_data(
    client: TestClient, run: FakeRun, method: str, path: str
) -> None:
    before = run.store.last_seq(run.run_id)
    for headers in ({}, {"Authorization": "Bearer apo_wrong"}, {"Authorization": "Basic x"}):
        r = _call(client, method, path, run, headers=headers)
        assert r.status_code == 401, (method, path, r.text)
        assert set(r.json()) == {"detail"}
    # Even with a body that is not JSON: authentication comes before reading the body.
    r = client.request(method, _url(path, run), content=b"{not json")
    assert r.status_code == 401
    assert run.store.last_seq(run.run_id) == before


@pytest.mark.parametrize(("method", "path"), sorted(k for k, v in EXPECTED.items() if v))
def test_roles_below_the_route_get_403_and_the_rest_get_through(
    client: TestClient, run: FakeRun, tokens: Tokens, method: str, path: str
) -> None:
    need = EXPECTED[(method, path)]
    assert need is not None
    before = run.store.last_seq(run.run_id)
    for role in ROLES[: ROLES.index(need)]:
        r = _call(client, method, path, run, headers=tokens.bearer(role))
        assert r.status_code == 403, (role, method, path, r.text)
        assert set(r.json()) == {"detail"}
    assert run.store.last_seq(run.run_id) == before, "a forbidden request wrote to the log"
    if path in STREAMS:
        return  # streams never end; tests/server/test_sse.py reads them over real HTTP
    r = _call(client, method, path, run, headers=tokens.bearer(need))
    assert r.status_code not in (401, 403), (need, method, path, r.text)
    assert r.status_code < 500 or r.status_code == 503, r.text  # 503: this app has no runner


def login(client: TestClient, name: str, token: str) -> str:
    r = client.post("/api/login", json={"name": name, "token": token})
    assert r.status_code == 200, r.text
    return str(r.json()["csrf_token"])


def test_login_sets_a_strict_httponly_cookie(client: TestClient, tokens: Tokens) -> None:
    r = client.post("/api/login", json={"name": "ann", "token": tokens.annotator})
    assert r.json()["name"] == "ann" and r.json()["role"] == "annotator"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    for attribute in ("HttpOnly", "SameSite=strict", "Path=/"):
        assert attribute.lower() in cookie.lower()
    assert tokens.annotator not in cookie
    me = client.get("/api/me").json()
    assert me == {"name": "ann", "role": "annotator", "csrf_token": r.json()["csrf_token"]}


def test_wrong_name_or_token_is_401(client: TestClient, tokens: Tokens) -> None:
    for name, token in (("ann", "apo_nope"), ("vic", tokens.annotator), ("", tokens.annotator)):
        r = client.post("/api/login", json={"name": name, "token": token})
        assert r.status_code in (401, 422)
        assert SESSION_COOKIE not in r.headers.get("set-cookie", "")


def test_cookie_writes_need_the_csrf_token(
    client: TestClient, tokens: Tokens, run: FakeRun
) -> None:
    csrf = login(client, "ann", tokens.annotator)
    url = f"/api/runs/{run.run_id}/guidance"
    body = {"text": "look at the logs", "kind": "hint"}
    before = run.store.last_seq(run.run_id)
    assert client.post(url, json=body).status_code == 403
    assert client.post(url, json=body, headers={CSRF_HEADER: "wrong"}).status_code == 403
    assert client.post(url, json=body, headers={CSRF_HEADER: ""}).status_code == 403
    assert run.store.last_seq(run.run_id) == before
    assert client.post(url, json=body, headers={CSRF_HEADER: csrf}).status_code == 201
    # Reads need no token; bearer clients need none either.
    assert client.get(f"/api/runs/{run.run_id}").status_code == 200
    client.cookies.clear()
    r = client.post(url, json=body, headers={"Authorization": f"Bearer {tokens.annotator}"})
    assert r.status_code == 201


def test_logout_ends_the_session(client: TestClient, tokens: Tokens) -> None:
    csrf = login(client, "vic", tokens.viewer)
    assert client.post("/api/logout").status_code == 403  # no CSRF token
    assert client.post("/api/logout", headers={CSRF_HEADER: csrf}).status_code == 204
    assert client.get("/api/me").status_code == 401


def test_revoking_ends_tokens_and_sessions(client: TestClient, tokens: Tokens) -> None:
    login(client, "vic", tokens.viewer)
    assert client.get("/api/me").status_code == 200
    r = client.delete("/api/annotators/vic", headers=tokens.bearer("admin"))
    assert r.status_code == 200 and r.json()["revoked"] is True
    assert client.get("/api/me").status_code == 401
    assert client.get("/api/me", headers=tokens.bearer("viewer")).status_code == 401


def test_admin_adds_an_annotator_whose_token_works(client: TestClient, tokens: Tokens) -> None:
    r = client.post(
        "/api/annotators", json={"name": "newbie", "role": "viewer"}, headers=tokens.bearer("admin")
    )
    assert r.status_code == 201
    token = r.json()["token"]
    me = client.get("/api/me", headers={"Authorization": f"Bearer {token}"}).json()
    assert me["name"] == "newbie" and me["role"] == "viewer"
    listed = client.get("/api/annotators", headers=tokens.bearer("admin")).json()["annotators"]
    assert {a["name"] for a in listed} == {"ada", "ann", "vic", "newbie"}
    assert all("token" not in a for a in listed)
    again = client.post(
        "/api/annotators", json={"name": "newbie", "role": "viewer"}, headers=tokens.bearer("admin")
    )
    assert again.status_code == 409


def test_pages_redirect_to_login_without_a_session(client: TestClient, run: FakeRun) -> None:
    for path in ("/", f"/runs/{run.run_id}"):
        r = client.get(path, follow_redirects=False)
        assert r.status_code == 303
        assert r.headers["location"].startswith("/login?next=")
    # A bearer token is for API clients, not for pages.
    login_page = client.get("/login")
    assert login_page.status_code == 200 and "<form" in login_page.text


def test_every_html_response_forbids_inline_script(
    client: TestClient, tokens: Tokens, run: FakeRun
) -> None:
    login(client, "vic", tokens.viewer)
    for path in ("/login", "/", f"/runs/{run.run_id}", "/runs/no-such-run"):
        r = client.get(path)
        assert r.headers["content-type"].startswith("text/html"), path
        csp = r.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "no-referrer"
    assert client.get("/runs/no-such-run").status_code == 404


class FakeClock:
    """A monotonic clock the test moves by hand, so no test waits out a window."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_failed_logins_are_limited_per_address_and_name(home: Home, tokens: Tokens) -> None:
    clock = FakeClock()
    limiter = LoginLimiter(LoginLimit(failures=3, window_s=60), clock=clock)
    with TestClient(create_app(home, tasks=[], login_limiter=limiter)) as client:
        for _ in range(3):
            assert client.post("/api/login", json={"name": "ann", "token": "x"}).status_code == 401
        # Now even the right token is refused: otherwise guessing would go on.
        blocked = client.post("/api/login", json={"name": "ann", "token": tokens.annotator})
        assert blocked.status_code == 429
        assert blocked.headers["retry-after"] == "60"
        assert "too many failed logins" in blocked.json()["detail"]
        assert SESSION_COOKIE not in blocked.headers.get("set-cookie", "")
        # Per address: another name from the same client is refused too.
        r = client.post("/api/login", json={"name": "vic", "token": tokens.viewer})
        assert r.status_code == 429
        clock.now += 30
        r = client.post("/api/login", json={"name": "ann", "token": tokens.annotator})
        assert r.status_code == 429 and r.headers["retry-after"] == "30"
        # Bearer tokens are not logins: they keep working.
        assert client.get("/api/me", headers=tokens.bearer("annotator")).status_code == 200
        clock.now += 30
        assert login(client, "ann", tokens.annotator)
        # Successes do not count: many of them are never limited.
        for _ in range(5):
            assert login(client, "ann", tokens.annotator)


def test_failures_for_a_name_are_limited_from_any_address() -> None:
    clock = FakeClock()
    limiter = LoginLimiter(LoginLimit(failures=2, window_s=10), clock=clock)
    limiter.failed(["client:10.0.0.1", "name:ann"])
    clock.now += 4
    limiter.failed(["client:10.0.0.2", "name:ann"])
    assert limiter.retry_after(["client:10.0.0.3", "name:ann"]) == 6
    assert limiter.retry_after(["client:10.0.0.1", "name:bob"]) is None
    clock.now += 6
    assert limiter.retry_after(["client:10.0.0.3", "name:ann"]) is None


def test_login_limits_are_checked() -> None:
    for failures, window in ((0, 60.0), (3, 0.0), (3, float("nan"))):
        with pytest.raises(ValueError, match="--login-"):
            LoginLimit(failures, window)
