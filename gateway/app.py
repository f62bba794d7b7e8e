"""Wiring and lifecycle of a gateway process.

Two aiohttp applications share one ``Gateway`` context: the public one (routes
and the job API) and the admin one. The context is opened by the public app's
``cleanup_ctx`` (so it is closed only if it opened) and handed to the admin app.

Shutdown on SIGTERM or SIGINT is ``gateway.drain``'s: not ready but still
serving for ``gateway.drain_delay_s``, then no new connections while the
requests in flight finish within ``gateway.shutdown_grace_s``, then exit.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from gateway import admin, jobs_api, problems, public, spans
from gateway.context import GATEWAY, Gateway, open_context
from gateway.drain import RELEASE_MARGIN_S, drain, mark_closing
from gateway.metrics import GatewayMetrics
from gateway.rejections import Rejection, client_closed
from gateway.screening import screen
from gateway.slow_clients import guard_server, parser_fault
from gateway.tenants import Tenants, owned
from tidegate import tracing
from tidegate.errors import RedisCommandError, RedisUnavailable
from tidegate.process import run_until_signalled, settle_heap
from tidegate.settings import Settings, parse_listen

log = logging.getLogger(__name__)


MALFORMED_LINES_PER_WINDOW = 10
MALFORMED_WINDOW_S = 60.0


class ParserErrorsInOneLine(logging.Filter):
    """aiohttp logs a malformed request (its parser's 400) with a traceback;
    anyone can send those, so each becomes one line without the trace, and
    at most ``MALFORMED_LINES_PER_WINDOW`` of them per ``MALFORMED_WINDOW_S``:
    a client sending garbage in a loop cannot fill the log. The first line
    of the next window says how many were left out."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.clock = clock
        self.reset()

    def reset(self) -> None:
        self._window_start = self.clock()
        self._logged = 0
        self._left_out = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], HttpProcessingError):
            now = self.clock()
            note = ""
            if now - self._window_start >= MALFORMED_WINDOW_S:
                if self._left_out:
                    note = (
                        f" ({self._left_out} more malformed request(s) in the last "
                        f"{MALFORMED_WINDOW_S:g} s were not logged)"
                    )
                self._window_start, self._logged, self._left_out = now, 0, 0
            if self._logged >= MALFORMED_LINES_PER_WINDOW:
                self._left_out += 1
                return False
            self._logged += 1
            error = record.exc_info[1]
            fault = parser_fault(error)
            record.msg = f"{record.getMessage()}: malformed request ({error.code}): {fault}{note}"
            record.args = None
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


_PARSER_FILTER = ParserErrorsInOneLine()


def quiet_parser_errors() -> None:
    """Install the one-line filter on aiohttp's server logger (once)."""
    server_log = logging.getLogger("aiohttp.server")
    if _PARSER_FILTER not in server_log.filters:
        server_log.addFilter(_PARSER_FILTER)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def problem_boundary(handler: Handler, *, traced: bool = False) -> Handler:
    """Every failure leaves as problem+json; nothing leaks a stack trace.

    A decorator on each public handler rather than an aiohttp middleware: the
    middleware machinery costs a few percent of admission throughput, and
    this is the whole of what it would do. ``traced``: the handler's requests
    are SERVER spans (``gateway.spans``) when tracing is on at the time the
    app is built; off, nothing is added.
    """

    @functools.wraps(handler)
    async def guarded(request: web.Request) -> web.StreamResponse:
        gw = request.app[GATEWAY]
        gw.in_flight += 1
        try:
            request[public.CANONICAL_PATH] = screen(request, gw.settings.gateway.max_header_bytes)
            response = await handler(request)
        except Exception as e:  # CancelledError is not an Exception: it goes on
            response = _failure(gw, request, e)
        finally:
            gw.in_flight -= 1
        if gw.draining:  # each answer ends its connection (gateway.drain)
            response.force_close()
        return response

    active = tracing.ACTIVE
    if not traced or active is None:
        return guarded

    @functools.wraps(handler)
    async def spanned(request: web.Request) -> web.StreamResponse:
        return await spans.serve(active, request, guarded)

    return spanned


async def expect_continue(request: web.Request) -> web.StreamResponse | None:
    """``Expect: 100-continue``: the checks that need no body run first
    (``public.check_before_body``); a request they refuse gets its answer
    (413, 401, 404, ...) instead of ``100 Continue``, and its body is never
    read. Any other expectation is a 417."""
    gw = request.app[GATEWAY]
    if request.headers.get("Expect", "").strip().lower() != "100-continue":
        failed = problems.problem(
            417, "expectation-failed", "Expectation failed", "Only 100-continue is understood."
        )
        failed.force_close()  # its body is never read
        return failed
    try:
        path = screen(request, gw.settings.gateway.max_header_bytes)
        public.check_before_body(request, path)
    except Rejection as e:
        response = _answer(gw, e)
        response.force_close()  # the body the client held back is never read
        return response
    if request.version >= (1, 1):
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0  # the answer proper has not started
    return None


def _failure(gw: Gateway, request: web.Request, error: Exception) -> web.StreamResponse:
    """The answer to what a handler raised (``problem_boundary``)."""
    if isinstance(error, Rejection):
        return _answer(gw, error)
    if isinstance(error, RedisUnavailable | RedisCommandError):  # 503 (a command error is logged)
        return _answer(gw, gw.rejection(error))
    if isinstance(error, web.HTTPException):
        if error.status < 400:
            raise error
        return problems.problem(
            error.status,
            "http-" + str(error.status),
            error.reason,
            f"{request.method} {request.path}: {error.reason}",
        )
    if isinstance(error, ConnectionResetError):  # aiohttp's own writes to a lost client too
        return _answer(gw, client_closed())
    log.error("unexpected error handling %s %s", request.method, request.path, exc_info=error)
    return problems.problem(
        500, "internal", "Internal error", "The gateway failed unexpectedly; see its log."
    )


def _answer(gw: Gateway, rejection: Rejection) -> web.Response:
    gw.metrics.rejected.labels(rejection.route, rejection.reason).inc()
    gw.note(rejection)
    return rejection.response()


def build_apps(
    settings: Settings, metrics: GatewayMetrics | None = None
) -> tuple[web.Application, web.Application]:
    """The public and admin applications, sharing one context."""
    quiet_parser_errors()
    limit = settings.gateway.max_header_bytes
    public_app = web.Application(
        # Routes enforce their own max_body_bytes before reading; this only
        # keeps aiohttp's own cap out of their way.
        client_max_size=max((r.max_body_bytes for r in settings.routes), default=0) + 1,
        # Let aiohttp's parser take large header lines so that our own limit
        # answers 431 problem+json; aiohttp's own limit would be a bare 400.
        handler_args={
            "max_field_size": limit * 4,
            "max_line_size": limit * 4,
            # Bodies as sent: forwarded and stored with their Content-Encoding,
            # checked, never decoded on the way (gateway.encoding).
            "auto_decompress": False,
        },
    )
    admin_app = web.Application()
    mark_closing(admin_app)  # the public app's answers: problem_boundary (no signal per answer)

    async def context(app: web.Application) -> AsyncIterator[None]:
        gw = await open_context(settings, metrics)
        app[GATEWAY] = gw
        admin_app[GATEWAY] = gw
        yield
        await gw.close()

    async def tenant_of(request: web.Request, job_id: str) -> str:
        projection = await request.app[GATEWAY].ledger.projection(job_id)
        return projection.get("tenant", "")

    public_app.cleanup_ctx.append(context)
    own = owned(Tenants(settings.tenants), tenant_of)
    jobs_api.add_routes(public_app, problem_boundary, own)
    # [\s\S]: "." would not match a decoded newline, leaving aiohttp to answer 404
    public_app.router.add_route(
        "*",
        r"/{tail:[\s\S]*}",
        problem_boundary(public.handle, traced=True),
        expect_handler=expect_continue,
    )
    admin.add_routes(admin_app)
    return public_app, admin_app


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    """Run until ``stop`` is set, then drain (``gateway.drain``)."""
    public_app, admin_app = build_apps(settings)
    gateway = settings.gateway
    # The handlers' last chance once the listener is closed: the grace, and
    # the margin in which the sync waits released at its end answer.
    public_runner = web.AppRunner(
        public_app, shutdown_timeout=gateway.shutdown_grace_s + RELEASE_MARGIN_S, access_log=None
    )
    admin_runner = web.AppRunner(admin_app, shutdown_timeout=1.0, access_log=None)
    await public_runner.setup()
    await admin_runner.setup()
    assert public_runner.server is not None
    guard_server(public_runner.server, gateway)
    stopped = False
    try:
        host, port = parse_listen(gateway.listen)
        await web.TCPSite(public_runner, host, port).start()
        admin_host, admin_port = parse_listen(gateway.admin_listen)
        await web.TCPSite(admin_runner, admin_host, admin_port).start()
        log.info(
            "gateway listening on %s (admin %s), %d route(s)",
            gateway.listen,
            gateway.admin_listen,
            len(settings.routes),
        )
        settle_heap()
        await stop.wait()
        stopped = True
    finally:
        if stopped:
            await drain(public_runner, admin_runner, gateway)
        else:
            await public_runner.cleanup()
            await admin_runner.cleanup()


def run(settings: Settings) -> None:
    """Entry point of ``tidegate gateway``."""

    run_until_signalled(lambda stop: serve(settings, stop), traced="gateway")
