"""The console's HTML pages. They carry no run data: the page scripts fetch it from the API
and render it as text, so agent and human text never passes through a template. Templates
get only values the server controls or has checked (a run id that exists)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from apollo.server.state import AppState

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"

router = APIRouter(include_in_schema=False)
_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES_DIR), autoescape=True, auto_reload=False
)
_NOT_FOUND = "<!doctype html><title>Not found</title><p>No such run. <a href='/'>All runs</a></p>"


def _render(name: str, **values: Any) -> HTMLResponse:
    return HTMLResponse(_env.get_template(name).render(**values))


def _to_login(request: Request) -> Response:
    target = request.url.path
    return RedirectResponse(f"/login?next={quote(target, safe='/')}", status_code=303)


def _logged_in(request: Request, state: AppState) -> bool:
    return state.auth.from_cookie(request) is not None


@router.get("/login", response_class=HTMLResponse)
async def login_page() -> Response:
    """The sign-in form (public)."""
    return _render("login.html")


@router.get("/", response_class=HTMLResponse)
async def dashboard_page(request: Request, state: AppState) -> Response:
    """The runs dashboard; redirects to /login without a session."""
    if not _logged_in(request, state):
        return _to_login(request)
    return _render("dashboard.html")


@router.get("/runs/{run_id}", response_class=HTMLResponse)
async def run_page(run_id: str, request: Request, state: AppState) -> Response:
    """One run's live view; redirects to /login without a session, and answers an HTML
    page (not the API's JSON 404) for a run that does not exist."""
    if not _logged_in(request, state):
        return _to_login(request)
    if state.store.get_run(run_id) is None:
        return HTMLResponse(_NOT_FOUND, status_code=404)
    return _render("run.html", run_id=run_id)
