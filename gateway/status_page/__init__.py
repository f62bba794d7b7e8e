"""The live status page of the admin port: static files, read once.

``/`` is ``index.html``; it loads ``page.js`` and ``page.css`` from
``/status-page/`` and polls ``/status`` (the same JSON ``tidegate status``
reads). No inline script or style, so the Content-Security-Policy allows
this origin only; the script writes every value as text, never as HTML.
"""

from __future__ import annotations

from importlib import resources

from aiohttp import web

HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}

FILES = {
    name: (resources.files(__name__) / name).read_bytes()
    for name in ("index.html", "page.js", "page.css")
}

TYPES = {"html": "text/html", "js": "text/javascript", "css": "text/css"}


def _serve(name: str) -> web.Response:
    return web.Response(
        body=FILES[name],
        content_type=TYPES[name.rsplit(".", 1)[1]],
        charset="utf-8",
        headers=HEADERS,
    )


async def page(request: web.Request) -> web.Response:
    return _serve("index.html")


async def asset(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in ("page.js", "page.css"):
        raise web.HTTPNotFound()
    return _serve(name)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", page)
    app.router.add_get("/status-page/{name}", asset)
