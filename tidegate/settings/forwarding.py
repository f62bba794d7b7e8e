"""How a route's requests are presented to its service: path, Host, redirects.

By default the service sees what the client sent: the whole path (the route's
prefix included) and its own host in ``Host`` (the address it is reached at).
A service that lives at ``/`` behind a prefix, or that builds absolute URLs,
needs one of the three adjustments every reverse proxy offers:

- ``strip_prefix``: the service gets the path without the route's
  ``match.path_prefix`` (``/orders/7`` -> ``/7``, ``/orders`` -> ``/``), as
  Traefik's StripPrefix or nginx's ``location /orders/ { proxy_pass
  http://svc/; }`` do.
- ``preserve_host``: the service gets the client's ``Host`` (nginx's
  ``proxy_set_header Host $host``, Traefik's ``passHostHeader``), so the
  absolute URLs it builds name the gateway's public host.
- ``rewrite_location``: a ``Location`` (or ``Content-Location``) in the
  service's answer that starts with ``from_prefix`` has it replaced by
  ``to_prefix`` (nginx's ``proxy_redirect``), so a redirect to
  ``http://orders:8000/7`` reaches the client as ``/orders/7``.

All three hold for proxy and queued routes alike: a queued route stores the
path and ``Host`` the service will receive, and its stored answer is
rewritten when it is given to the client.
"""

from __future__ import annotations

from pydantic import field_validator
from pydantic.dataclasses import dataclass

from tidegate.settings.base import STRICT

LOCATION_HEADERS = frozenset({"location", "content-location"})


@dataclass(frozen=True, config=STRICT)
class LocationRewrite:
    """One ``proxy_redirect``: what a service's redirect starts with, and what
    the client is given instead."""

    from_prefix: str
    """The start of the service's ``Location`` (``http://orders:8000/``)."""
    to_prefix: str
    """What replaces it (``/orders/``, or another absolute URL)."""

    @field_validator("from_prefix", "to_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not value or any(c in value for c in "\r\n\x00 "):
            raise ValueError("must be a URL or path prefix without spaces or control characters")
        return value


@dataclass(frozen=True, config=STRICT)
class ForwardingSettings:
    """What the route's service sees of the request and the client of its answer."""

    strip_prefix: bool = False
    """The service gets the path without the route's ``match.path_prefix``."""
    preserve_host: bool = False
    """The service gets the client's ``Host`` instead of its own address."""
    rewrite_location: tuple[LocationRewrite, ...] = ()
    """Redirect targets rewritten in the service's answers, first match wins."""

    def service_path(self, prefix: str, path: str) -> str:
        """The path the service gets for a (canonical) request ``path`` that
        the route with ``prefix`` matched."""
        if not self.strip_prefix:
            return path
        rest = path[len(prefix.rstrip("/")) :]
        return rest if rest.startswith("/") else "/" + rest

    def answer_headers(self, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """The service's answer headers with its redirect targets rewritten
        (the same list when there is nothing to rewrite)."""
        if not self.rewrite_location:
            return headers
        return [
            (k, self._location(v)) if k.lower() in LOCATION_HEADERS else (k, v) for k, v in headers
        ]

    def _location(self, value: str) -> str:
        for rewrite in self.rewrite_location:
            if value.startswith(rewrite.from_prefix):
                return rewrite.to_prefix + value[len(rewrite.from_prefix) :]
        return value
