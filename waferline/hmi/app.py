"""The HMI web app (FastAPI): pages, a JSON API, server-sent events and /metrics.

Every API route needs a session (401 without one); every command also its CSRF token (403) and the
role the run control needs for it (403 naming that role, from sequencer/run/roles.py's table, the same
one the control socket applies). A command goes to the run's own sequencer over its control socket,
as the CLI's do, journaled there with the HMI's OS user and "hmi:<user> (<role>)". Abort and scrap
need `confirm: true`. Assets are served from this package: nothing is loaded from another host.
(No `from __future__ import annotations` here: FastAPI reads the routes' dependency annotations at
definition time, and they name closures.)
"""

import asyncio
import secrets
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Form, HTTPException, Request, Response
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from drivers.configs import names
from drivers.errors import ConfigError, WaferlineError
from drivers.line import LineConfig
from sequencer.run.remote import RemoteControlError, RunNotRunning, send_command
from sequencer.run.roles import NEEDED, RANK
from sequencer.run.rundir import list_runs, runs_dir
from waferline.hmi import metrics
from waferline.hmi.alarms import AlarmBook, AlarmError
from waferline.hmi.launch import StartBody, start
from waferline.hmi.pictures import picture
from waferline.hmi.sessions import LoginLimiter, Session, Sessions
from waferline.hmi.users import load_users, verify
from waferline.hmi.views import Watcher, report_file, run_detail_json

STATIC = Path(__file__).parent / "static"
COOKIE = "wl_session"
LOGIN_CSRF = "wl_login"
Command = Literal["hold", "restart", "stop", "abort", "reset", "bypass", "scrap"]
CONFIRM = ("abort", "scrap")
HEADERS = {"Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
           "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
           "Cache-Control": "no-store"}


class CommandBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    why: str = Field(default="", max_length=500)
    confirm: bool = False
    stack: str | None = Field(default=None, max_length=200, description="scrap: the stack")
    interlock: str | None = Field(default=None, max_length=100, description="bypass: the input")
    minutes: float | None = Field(default=None, gt=0, le=480, description="bypass: expiry")


class AlarmBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(default="", max_length=500)
    minutes: float | None = Field(default=None, gt=0, le=480, description="shelve: until when")


ALARM_ROLES = {"acknowledge": "operator", "shelve": "engineer"}


def create_app(line: LineConfig, *, served: bool = True, users_file: Path | None = None,
               state_dir: Path = Path(".waferline"), where: list[str] | None = None,
               secure_cookies: bool = False, sessions: Sessions | None = None,
               limiter: LoginLimiter | None = None) -> FastAPI:
    """`served`: the line's tools can be reached at their addresses (real tools, or a `sim up`'s
    endpoints applied); otherwise only the tools a running sequencer holds are asked. `state_dir`
    holds the HMI's journal (alarm acknowledgements and shelves); `where` are the `--line`/`--endpoints`
    arguments a run started from the HMI gets."""
    book = AlarmBook(state_dir / f"hmi-journal-{line.name}.sqlite", line.name)
    watcher = Watcher(line, served=served, alarms=book)
    commands: Counter[tuple[str, bool]] = Counter()
    collector = metrics.HmiCollector(lambda: watcher.snapshot, watcher.reads, commands)
    sessions = sessions or Sessions()
    limiter = limiter or LoginLimiter()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await watcher.start()
        yield
        await watcher.stop()
        book.close()

    # no /docs: FastAPI's Swagger page loads its scripts from a CDN; the OpenAPI document is served
    app = FastAPI(title="waferline HMI", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url="/api/openapi.json")
    app.state.watcher = watcher

    @app.middleware("http")
    async def headers(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        for key, value in HEADERS.items():
            response.headers.setdefault(key, value)
        return response

    def session_of(request: Request) -> Session | None:
        return sessions.get(request.cookies.get(COOKIE))

    def need_session(request: Request) -> Session:
        session = session_of(request)
        if session is None:
            raise HTTPException(401, "not logged in")
        return session

    def need_csrf(request: Request, session: Annotated[Session, Depends(need_session)]) -> Session:
        if not secrets.compare_digest(request.headers.get("X-CSRF-Token", ""), session.csrf):
            raise HTTPException(403, "missing or wrong X-CSRF-Token")
        return session

    # --- login ---------------------------------------------------------------------------------
    @app.get("/login", include_in_schema=False)
    async def login_page() -> Response:
        token = secrets.token_urlsafe(24)
        html = (STATIC / "login.html").read_text().replace("{{csrf}}", token)
        response = HTMLResponse(html)
        response.set_cookie(LOGIN_CSRF, token, httponly=True, samesite="strict", secure=secure_cookies)
        return response

    @app.post("/login", include_in_schema=False)
    async def login(request: Request, user: Annotated[str, Form(max_length=64)],
                    password: Annotated[str, Form(max_length=1024)],
                    csrf: Annotated[str, Form()]) -> Response:
        if not secrets.compare_digest(csrf, request.cookies.get(LOGIN_CSRF, "")):
            raise HTTPException(403, "the login form expired; reload it")
        where = request.client.host if request.client else "?"
        keys = (f"ip:{where}", f"user:{user}")
        wait = limiter.wait_s(*keys)
        if wait > 0:
            return HTMLResponse(f"too many failed logins: wait {wait:.0f} s", 429,
                                headers={"Retry-After": str(int(wait) + 1)})
        account = await asyncio.to_thread(verify, load_users(users_file), user, password)
        if account is None:
            limiter.failed(*keys)
            return RedirectResponse("/login?failed=1", 303)
        limiter.succeeded(*keys)
        session = sessions.create(user, account.role)
        response = RedirectResponse("/", 303)
        response.set_cookie(COOKIE, session.token, httponly=True, samesite="strict", secure=secure_cookies)
        response.delete_cookie(LOGIN_CSRF)
        return response

    @app.post("/api/logout")
    async def logout(request: Request, session: Annotated[Session, Depends(need_csrf)]) -> dict[str, bool]:
        sessions.drop(session.token)
        return {"ok": True}

    # --- pages ---------------------------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    @app.get("/runs", include_in_schema=False)
    @app.get("/runs/{run_id}", include_in_schema=False)
    @app.get("/alarms", include_in_schema=False)
    async def page(request: Request, run_id: str | None = None) -> Response:
        if session_of(request) is None:
            return RedirectResponse("/login", 303)
        return FileResponse(STATIC / "app.html")

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> Response:
        return Response(status_code=204)

    @app.get("/static/{name}", include_in_schema=False)
    async def static(name: str) -> Response:
        path = (STATIC / name).resolve()
        if path.parent != STATIC.resolve() or not path.is_file():
            raise HTTPException(404)
        return FileResponse(path)

    @app.get("/runs/{run_id}/report/{name:path}", include_in_schema=False)
    async def report(run_id: str, name: str, session: Annotated[Session, Depends(need_session)]) -> Response:
        path = report_file(run_id, name or "index.html")
        if path is None:
            raise HTTPException(404, "no such report file")
        return FileResponse(path, headers={"Content-Security-Policy":
                                             "default-src 'self' 'unsafe-inline'; img-src 'self' data:"})

    # --- API -----------------------------------------------------------------------------------
    @app.get("/api/me")
    async def me(session: Annotated[Session, Depends(need_session)]) -> dict[str, str]:
        return {"user": session.user, "role": session.role, "csrf": session.csrf}

    @app.get("/api/line")
    async def line_view(session: Annotated[Session, Depends(need_session)]) -> dict[str, Any]:
        return {"line": line.name, "tools": watcher.snapshot["tools"], "at": watcher.snapshot["at"]}

    @app.get("/api/runs")
    async def runs(session: Annotated[Session, Depends(need_session)]) -> dict[str, Any]:
        return {"runs": watcher.snapshot["runs"]}

    @app.get("/api/flows")
    async def flows(session: Annotated[Session, Depends(need_session)]) -> dict[str, list[str]]:
        return {"flows": names("flows")}

    @app.post("/api/runs")
    async def start_run(body: StartBody, session: Annotated[Session, Depends(need_csrf)]) -> dict[str, Any]:
        """Start a run of a flow on this line (operator)."""
        try:
            pid = start(body, where or ["--line", line.name], f"hmi:{session.user} ({session.role})",
                        state_dir / "launched")
        except ConfigError as exc:
            raise HTTPException(422, str(exc)) from None
        commands[("start", True)] += 1
        return {"started": True, "pid": pid, "flow": body.flow}

    @app.get("/api/runs/{run_id}")
    async def run(run_id: str, session: Annotated[Session, Depends(need_session)]) -> Response:
        text = run_detail_json(run_id)  # cached: no thread hop, no re-encoding per browser
        if text is None:
            text = await asyncio.to_thread(run_detail_json, run_id, True)
        if text is None:
            raise HTTPException(404, f"no run {run_id!r}")
        return Response(text, media_type="application/json")

    @app.get("/api/runs/{run_id}/pictures/{what}.png")
    async def run_picture(run_id: str, what: str,
                          session: Annotated[Session, Depends(need_session)]) -> Response:
        if what != "gantt" and not what.startswith("xsection-"):
            raise HTTPException(404, "pictures: gantt or xsection-<stack>")
        path = await asyncio.to_thread(picture, state_dir / "pictures", run_id, what)
        if path is None:
            raise HTTPException(404, f"no {what} for run {run_id!r} (yet)")
        return FileResponse(path, media_type="image/png", headers={"Cache-Control": "private, max-age=5"})

    @app.post("/api/runs/{run_id}/{command}")
    async def command(run_id: str, command: Command, body: CommandBody,
                      session: Annotated[Session, Depends(need_csrf)]) -> dict[str, Any]:
        needed = NEEDED.get(command, "supervisor")
        if RANK[session.role] < RANK[needed]:
            raise HTTPException(403, f"{command} needs the {needed} role; {session.user} is {session.role}")
        if command in CONFIRM and not body.confirm:
            raise HTTPException(400, f"{command} asks for confirmation: send confirm: true")
        if run_id not in list_runs():
            raise HTTPException(404, f"no run {run_id!r}")
        extra: dict[str, Any] = {}
        if command == "scrap":
            if not body.stack:
                raise HTTPException(422, "scrap needs the stack")
            extra["stack"] = body.stack
        if command == "bypass":
            if not body.interlock or body.minutes is None:
                raise HTTPException(422, "bypass needs the interlock and minutes (it always expires)")
            extra["bypass"] = {"interlock": body.interlock, "role": session.role, "minutes": body.minutes}
        try:
            reply = await send_command(runs_dir() / run_id, command, f"hmi:{session.user} ({session.role})",
                                       body.why, **extra)
        except RunNotRunning as exc:
            raise HTTPException(409, f"controller not running: {exc}") from None
        except (RemoteControlError, WaferlineError) as exc:
            raise HTTPException(503, str(exc)) from None
        commands[(command, bool(reply.get("ok")))] += 1
        if not reply.get("ok"):
            raise HTTPException(409, reply.get("error") or f"{command} refused")
        return reply

    @app.get("/api/alarms")
    async def alarms(session: Annotated[Session, Depends(need_session)]) -> dict[str, Any]:
        return book.view()

    @app.post("/api/alarms/{key}/{action}")
    async def alarm_action(key: str, action: Literal["acknowledge", "shelve"], body: AlarmBody,
                           session: Annotated[Session, Depends(need_csrf)]) -> dict[str, Any]:
        needed = ALARM_ROLES[action]
        if RANK[session.role] < RANK[needed]:
            raise HTTPException(403, f"{action} needs the {needed} role; {session.user} is {session.role}")
        who = f"hmi:{session.user}"
        try:
            if action == "acknowledge":
                record = book.acknowledge(key, who, session.role, body.reason)
            else:
                record = book.shelve(key, who, session.role, body.minutes or 0, body.reason)
        except AlarmError as exc:
            raise HTTPException(exc.status, str(exc)) from None
        await watcher.refresh()
        return record.view()

    @app.get("/api/events")
    async def events(request: Request, session: Annotated[Session, Depends(need_session)],
                     topics: str = "tools,runs,alarms") -> Response:
        """Server-sent events: each message holds the subscribed topics (tools, runs, alarms) that
        changed; a page subscribes to what it shows."""
        wanted = tuple(t for t in ("tools", "runs", "alarms") if t in topics.split(","))
        sent: dict[str, int] = {}

        async def stream() -> AsyncIterator[str]:
            async for version in watcher.changes(-1):
                if await request.is_disconnected():
                    return
                data = watcher.message(wanted, sent) if version >= 0 else None
                if data is not None:
                    yield f"id: {version}\ndata: {data}\n\n"
                elif version < 0:
                    yield ": heartbeat\n\n"
        return StreamingResponse(stream(), media_type="text/event-stream")

    @app.get("/metrics", include_in_schema=False)
    async def metrics_text() -> Response:
        text = await asyncio.to_thread(metrics.render, collector)
        return Response(text, media_type=metrics.CONTENT_TYPE)

    return app
