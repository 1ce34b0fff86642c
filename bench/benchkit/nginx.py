"""nginx as the benchmark's upstream and as the reference reverse proxy.

Both run in the foreground without a master process (one worker each, like kratos-hooks with
``WORKERS=1``), with every path — pid, temp dirs, logs — inside the benchmark's temp dir.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from benchkit.pinning import pinned
from benchkit.processes import BenchError, Child, Supervisor

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

SANITY_LOG = "sanity.log"


@dataclass(frozen=True, slots=True)
class Nginx:
    child: Child
    port: int
    root: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _common(root: Path, name: str) -> str:
    return f"""
daemon off;
master_process off;
worker_processes 1;
pid {root}/{name}.pid;
error_log {root}/{name}-error.log warn;
events {{ worker_connections 4096; multi_accept on; }}
"""


def _http_common(root: Path, name: str) -> str:
    temp = root / f"{name}-temp"
    return f"""
    access_log off;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    # wrk and the proxies keep their connections for the whole run.
    keepalive_requests 10000000;
    keepalive_timeout 75s;
    client_max_body_size 1m;
"""


def upstream_config(root: Path, port: int, body: str, read_body_paths: tuple[str, ...]) -> str:
    """A fast upstream answering ``body`` as JSON to every GET and POST.

    ``return`` answers before a request body is read, as no real application does: a
    proxy streaming the body would get its answer mid-upload and have to cope with that.
    On ``read_body_paths`` the body is therefore read whole first (``mirror`` with
    ``mirror_request_body`` to a no-op location); then the static handler refuses a POST
    to a file and ``error_page`` turns that into a 200 with the same document, from
    ``answer.json``. Sanity requests (``?bench_sanity=<label>``) are logged with their
    request length, which proves the bodies arrived; the load is not logged.
    """
    if "'" in body or "$" in body or "\\" in body:
        raise ValueError("the upstream body must not contain ', $ or \\")
    reading = "".join(
        f"""
        location = {path} {{
            mirror /__bench_sink;
            mirror_request_body on;
            alias {root}/answer.json;
            error_page 405 =200 /answer.json?$args;
        }}"""
        for path in read_body_paths
    )
    return f"""{_common(root, "upstream")}
http {{
{_http_common(root, "upstream")}
    default_type application/json;
    client_body_buffer_size 128k;
    open_file_cache max=16;
    map $arg_bench_sanity $bench_sanity {{ default 1; "" 0; }}
    # $request: the method as received ($request_method is GET after error_page).
    log_format sanity '$arg_bench_sanity $request_length $status $request';
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        access_log {root}/{SANITY_LOG} sanity if=$bench_sanity;
        location / {{
            return 200 '{body}';
        }}{reading}
        location = /answer.json {{
            internal;
            root {root};
        }}
        location = /__bench_sink {{
            internal;
            return 204;
        }}
    }}
}}
"""


def start_upstream(
    supervisor: Supervisor, root: Path, port: int, body: str, read_body_paths: tuple[str, ...]
) -> Nginx:
    """The upstream nginx of ``upstream_config``, with its ``answer.json`` in place."""
    (root / "answer.json").write_text(body)
    config = upstream_config(root, port, body, read_body_paths)
    return start(supervisor, root, "upstream", config, port)


def proxy_config(root: Path, port: int, upstream_port: int) -> str:
    """nginx as a plain reverse proxy with upstream keep-alive and streamed request bodies."""
    return f"""{_common(root, "proxy")}
http {{
{_http_common(root, "proxy")}
    upstream backend {{
        server 127.0.0.1:{upstream_port};
        keepalive 64;
        keepalive_requests 10000000;
    }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            # Stream request bodies like kratos-hooks does, read in 128 KiB pieces: as fast
            # as buffering them in memory here, and no temp files.
            proxy_request_buffering off;
            client_body_buffer_size 128k;
        }}
    }}
}}
"""


def start(
    supervisor: Supervisor, root: Path, name: str, config: str, port: int, cpus: str = ""
) -> Nginx:
    """Write ``config`` to ``root``, validate it, and start nginx on it (on ``cpus`` when
    given, a taskset list)."""
    (root / f"{name}-temp").mkdir(parents=True, exist_ok=True)
    conf = root / f"{name}.conf"
    conf.write_text(config)
    argv = [NGINX, "-p", str(root), "-c", str(conf), "-e", str(root / f"{name}-error.log")]
    check = subprocess.run(
        [*argv, "-t", "-q"], capture_output=True, text=True, timeout=10, check=False
    )
    if check.returncode != 0:
        raise BenchError(f"nginx {name} config rejected:\n{check.stderr}")
    child = supervisor.spawn(f"nginx-{name}", pinned(cpus, argv) if cpus else argv)
    return Nginx(child, port, root)


def sanity_lines(root: Path) -> list[tuple[str, str, int, int]]:
    """(label, method, request_length, status) of every sanity request the upstream saw."""
    path = root / SANITY_LOG
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        label, length, status, method = line.split()[:4]
        rows.append((label, method, int(length), int(status)))
    return rows
