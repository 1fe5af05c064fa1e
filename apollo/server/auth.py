"""Who is asking, and may they? (docs/api.md "Auth").

Two ways in: a bearer token (API clients; tokens are stored hashed by the Store), or a
browser session made by `POST /api/login` — a random id in an HttpOnly, SameSite=Strict
cookie, mapped in memory to the annotator and a CSRF token that every cookie-authenticated
write must echo in `X-CSRF-Token`.

Every API route declares the least role it needs with `@access(...)`; `GuardedRoute` checks
it before FastAPI reads the request body, so an unauthenticated or forbidden request is
answered 401/403 whatever it carries, and a route without a declaration cannot be mounted.
"""

from __future__ import annotations

import math
import secrets
import time
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar

from fastapi import Depends, HTTPException, Request, Response
from fastapi.routing import APIRoute

from apollo.log.events import Annotator, Role
from apollo.log.store import Store
from apollo.server.defaults import LOGIN_FAILURES, LOGIN_WINDOW_S
from apollo.server.state import app_state

SESSION_COOKIE = "apollo_session"
CSRF_HEADER = "X-CSRF-Token"
SESSION_TTL_S = 12 * 3600.0
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
RANK = {Role.VIEWER: 0, Role.ANNOTATOR: 1, Role.ADMIN: 2}
_ACCESS = "__apollo_access__"

F = TypeVar("F", bound=Callable[..., Coroutine[Any, Any, Any]])


@dataclass(frozen=True, slots=True)
class Session:
    """A browser login: kept only in this process's memory."""

    id: str
    name: str
    csrf_token: str
    expires: float


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated annotator behind a request."""

    name: str
    role: Role
    via: Literal["bearer", "cookie"]
    session: Session | None = None


class SessionStore:
    """Browser sessions by random id; they end on logout, on revocation, or after 12 h."""

    def __init__(self, ttl_s: float = SESSION_TTL_S) -> None:
        self.ttl_s = ttl_s
        self._sessions: dict[str, Session] = {}

    def create(self, name: str) -> Session:
        session = Session(
            id=secrets.token_urlsafe(32),
            name=name,
            csrf_token=secrets.token_urlsafe(32),
            expires=time.time() + self.ttl_s,
        )
        self._sessions[session.id] = session
        return session

    def get(self, session_id: str) -> Session | None:
        session = self._sessions.get(session_id)
        if session is not None and session.expires < time.time():
            del self._sessions[session_id]
            return None
        return session

    def drop(self, session_id: str) -> None:
        self._sessions.pop(session_id, None)

    def drop_annotator(self, name: str) -> None:
        for sid in [s.id for s in self._sessions.values() if s.name == name]:
            del self._sessions[sid]


@dataclass(frozen=True, slots=True)
class LoginLimit:
    """Failed logins allowed per client address and per name within a sliding window."""

    failures: int = LOGIN_FAILURES
    window_s: float = LOGIN_WINDOW_S

    def __post_init__(self) -> None:
        if self.failures < 1 or not (math.isfinite(self.window_s) and self.window_s > 0):
            raise ValueError("--login-failures must be 1 or more and --login-window above 0")


class LoginLimiter:
    """Counts failed logins per key (a client address, a name). Once a key has `failures`
    failures within `window_s`, every login with it is refused (429), the right token too,
    until the oldest of them leaves the window; otherwise guessing would go on. Successes are
    not counted. `clock` is injectable so tests need not wait out the window."""

    # Keys kept at most: beyond this, keys whose failures all left the window are dropped.
    MAX_KEYS = 10_000

    def __init__(
        self, limit: LoginLimit | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit or LoginLimit()
        self.clock = clock
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, key: str, now: float) -> deque[float]:
        found = self._failures.get(key)
        if found is None:
            return deque()
        while found and found[0] <= now - self.limit.window_s:
            found.popleft()
        if not found:
            del self._failures[key]
        return found

    def retry_after(self, keys: Sequence[str]) -> float | None:
        """Seconds until a login with `keys` is allowed again, or None when it is now."""
        now = self.clock()
        waits = [
            found[-self.limit.failures] + self.limit.window_s - now
            for found in (self._recent(k, now) for k in keys)
            if len(found) >= self.limit.failures
        ]
        return max(waits) if waits else None

    def failed(self, keys: Sequence[str]) -> None:
        """Count a failed login against each key."""
        now = self.clock()
        if len(self._failures) >= self.MAX_KEYS:
            for key in list(self._failures):
                self._recent(key, now)
        for key in keys:
            found = self._failures.setdefault(key, deque())
            found.append(now)
            while len(found) > self.limit.failures:
                found.popleft()


def _unauthenticated(why: str) -> HTTPException:
    return HTTPException(401, why, headers={"WWW-Authenticate": "Bearer"})


class Authenticator:
    """Resolves requests to principals against the store's annotators."""

    def __init__(
        self, store: Store, sessions: SessionStore, limiter: LoginLimiter | None = None
    ) -> None:
        self.store = store
        self.sessions = sessions
        self.limiter = limiter or LoginLimiter()

    def _active(self, name: str) -> Annotator | None:
        # Looked up on every request, so a revocation (from the CLI too) takes effect at once.
        return next((a for a in self.store.list_annotators() if a.name == name), None)

    def login(self, name: str, token: str, client: str) -> tuple[Annotator, Session]:
        """A new browser session for the right name and token; 401 for a wrong one, 429 once
        `client` (its address) or `name` has failed too often lately (`LoginLimiter`)."""
        keys = (f"client:{client}", f"name:{name}")
        wait = self.limiter.retry_after(keys)
        if wait is not None:
            seconds = max(1, math.ceil(wait))
            raise HTTPException(
                429,
                f"too many failed logins from this address or for this name; try again in "
                f"{seconds} s",
                headers={"Retry-After": str(seconds)},
            )
        annotator = self.store.authenticate(token)
        if annotator is None or not secrets.compare_digest(annotator.name.encode(), name.encode()):
            self.limiter.failed(keys)
            raise HTTPException(401, "wrong name or token")
        return annotator, self.sessions.create(annotator.name)

    def from_cookie(self, request: Request) -> Principal | None:
        """The browser session's principal, or None (no cookie, expired, revoked)."""
        sid = request.cookies.get(SESSION_COOKIE)
        session = self.sessions.get(sid) if sid else None
        if session is None:
            return None
        annotator = self._active(session.name)
        if annotator is None or annotator.revoked:
            self.sessions.drop(session.id)
            return None
        return Principal(annotator.name, Role(annotator.role), "cookie", session)

    def authenticate(self, request: Request) -> Principal:
        """The request's principal; raises 401 when there is none."""
        header = request.headers.get("authorization")
        if header is not None:
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise _unauthenticated("use 'Authorization: Bearer <token>'")
            annotator = self.store.authenticate(token.strip())
            if annotator is None:
                raise _unauthenticated("unknown or revoked token")
            return Principal(annotator.name, Role(annotator.role), "bearer")
        principal = self.from_cookie(request)
        if principal is None:
            raise _unauthenticated("not logged in: log in at /login or send a bearer token")
        return principal

    def check(self, request: Request, role: Role) -> Principal:
        """Authenticate, check CSRF on cookie writes, then the role: 401, 403 or a principal."""
        principal = self.authenticate(request)
        if principal.via == "cookie" and request.method not in SAFE_METHODS:
            sent = request.headers.get(CSRF_HEADER, "")
            assert principal.session is not None
            if not secrets.compare_digest(sent.encode(), principal.session.csrf_token.encode()):
                raise HTTPException(
                    403, f"missing or wrong {CSRF_HEADER} header (the token is in GET /api/me)"
                )
        if RANK[principal.role] < RANK[role]:
            raise HTTPException(403, f"this needs the {role.value} role; you are {principal.role}")
        return principal


@dataclass(frozen=True, slots=True)
class Access:
    """A route's access rule: the least role, or None for a public route."""

    role: Role | None


def access(role: Role | None) -> Callable[[F], F]:
    """Declare the least role a route needs (None: public). Every API route must."""

    def mark(fn: F) -> F:
        setattr(fn, _ACCESS, Access(role))
        return fn

    return mark


class GuardedRoute(APIRoute):
    """An API route that authenticates and authorizes before anything else happens."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        rule = getattr(self.endpoint, _ACCESS, None)
        if not isinstance(rule, Access):
            raise RuntimeError(f"route {self.path} declares no access rule; add @access(...)")
        inner = super().get_route_handler()
        if rule.role is None:
            return inner
        role = rule.role

        async def guarded(request: Request) -> Response:
            request.state.principal = app_state(request).auth.check(request, role)
            return await inner(request)

        return guarded


def _principal(request: Request) -> Principal:
    principal: Principal = request.state.principal
    return principal


CurrentPrincipal = Annotated[Principal, Depends(_principal)]


def set_session_cookie(request: Request, response: Response, session: Session) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        session.id,
        httponly=True,
        samesite="strict",
        path="/",
        secure=request.url.scheme == "https",
    )
