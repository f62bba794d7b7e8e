"""A real nginx (Debian's) as the load balancer in front of gateways.

Configured as ingress-nginx runs its upstreams: HTTP/1.1 to the upstream
with keep-alive (``keepalive`` in the upstream block, an empty
``Connection`` header), round robin, nginx's default retry rules (a request
already sent is not retried elsewhere). ``set_upstreams`` rewrites the
upstream list and reloads (SIGHUP), as an ingress controller does when a
Service's endpoints change. Everything lives in a temporary folder; the
listener is on loopback.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from pathlib import Path

from shell.local_redis import free_port

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def _config(folder: Path, port: int, upstreams: list[int]) -> str:
    servers = "\n".join(f"    server 127.0.0.1:{p} max_fails=0;" for p in upstreams)
    return f"""
worker_processes 1;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log {folder}/access.log;
  client_body_temp_path {folder}/body;
  proxy_temp_path {folder}/proxy;
  fastcgi_temp_path {folder}/fastcgi;
  uwsgi_temp_path {folder}/uwsgi;
  scgi_temp_path {folder}/scgi;
  upstream gateways {{
{servers}
    keepalive 32;
  }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://gateways;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_read_timeout 60s;
    }}
  }}
}}
"""


class Nginx:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.conf = folder / "nginx.conf"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, upstreams: list[int]) -> None:
        self.conf.write_text(_config(self.folder, self.port, upstreams))
        self.proc = subprocess.Popen(
            [NGINX, "-c", str(self.conf), "-p", str(self.folder), "-g", "daemon off;"],
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 10
        while not (self.folder / "nginx.pid").exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                assert self.proc.stderr is not None
                raise RuntimeError(f"nginx did not start: {self.proc.stderr.read().decode()}")
            time.sleep(0.02)

    def set_upstreams(self, upstreams: list[int]) -> None:
        """Rewrite the upstream list and reload (workers with the old list
        finish what they are doing, then exit)."""
        assert self.proc is not None
        self.conf.write_text(_config(self.folder, self.port, upstreams))
        self.proc.send_signal(signal.SIGHUP)

    def error_log(self) -> str:
        path = self.folder / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # graceful
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
