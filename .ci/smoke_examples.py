"""Run the examples against whatever safeplot this interpreter imports (CI: the built wheel).

    python .ci/smoke_examples.py EXAMPLES_DIR

Runs examples/legacy_callback.py from 8 threads, then serves examples/wsgi_app.py,
examples/legacy_app.py, examples/django_app.py and examples/asgi_app.py on free ports and fetches every
route once, then runs examples/celery_app.py (a worker and the web app, with Debian's redis-server on a
free port) and fetches a report it rendered.  Exits 1,
saying what failed, if any output is wrong; the servers are stopped either way.
Standard library only, so that it needs nothing the wheel does not bring.
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PNG = b"\x89PNG\r\n\x1a\n"


def get(port: int, path: str) -> tuple[int, str, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type") or "", response.read()
    finally:
        connection.close()


@contextmanager
def serving(script: Path, ready: str, *arguments: str) -> Iterator[int]:
    process = subprocess.Popen(
        [sys.executable, str(script), *(arguments or ("--port", "0"))],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        for line in process.stdout:
            match = re.search(ready, line)
            if match:
                yield int(match.group(1))
                return
        raise RuntimeError(f"{script.name} exited before serving")
    finally:
        process.terminate()
        process.wait(30)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def celery_example(examples: Path) -> Iterator[int]:
    """Redis, a worker and the web app of examples/celery_app.py; yields the web app's port."""
    redis_server = shutil.which("redis-server")
    if redis_server is None:
        raise SystemExit("FAIL: redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    redis = subprocess.Popen(
        [redis_server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    os.environ["REDIS_URL"] = f"redis://127.0.0.1:{port}/0"
    worker = subprocess.Popen(
        [sys.executable, str(examples / "celery_app.py"), "worker"], stdout=subprocess.DEVNULL
    )
    try:
        with serving(
            examples / "celery_app.py", r"serving on http://127\.0\.0\.1:(\d+)/", "web", "--port", "0"
        ) as web:
            yield web
    finally:
        worker.terminate()
        worker.wait(30)
        redis.terminate()
        redis.wait(30)


def check(condition: bool, what: str) -> None:
    if not condition:
        raise SystemExit(f"FAIL: {what}")
    print(f"ok: {what}")


def main(examples: Path) -> int:
    import safeplot

    print(f"safeplot {safeplot.__version__} from {Path(safeplot.__file__).parent}")
    result = subprocess.run(
        [sys.executable, str(examples / "legacy_callback.py"), "--threads", "8", "--renders", "2"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    check(
        result.returncode == 0 and "all outputs match" in result.stdout, "legacy_callback.py: outputs match"
    )

    with serving(examples / "wsgi_app.py", r"serving on http://127\.0\.0\.1:(\d+)/") as port:
        check(get(port, "/healthz")[0] == 200, "wsgi_app.py /healthz")
        status, _, page = get(port, "/")
        kinds = re.findall(rb'src="/plot/(\w+)\.png', page)
        check(status == 200 and len(kinds) == 8, "wsgi_app.py / lists 8 plots")
        for kind in kinds:
            status, mimetype, body = get(port, f"/plot/{kind.decode()}.png?width=3&height=2&dpi=50")
            check(
                status == 200 and mimetype == "image/png" and body.startswith(PNG),
                f"/plot/{kind.decode()}.png",
            )
        for fmt, magic in (("svg", b"<?xml"), ("pdf", b"%PDF")):
            status, _, body = get(port, f"/plot/line.{fmt}")
            check(status == 200 and body.startswith(magic), f"/plot/line.{fmt}")
        status, mimetype, body = get(port, "/plot/line.png?n=0")
        check(status == 400 and mimetype.startswith("text/plain"), "a bad query is a text/plain 400")

    with serving(examples / "legacy_app.py", r"Running on http://127\.0\.0\.1:(\d+)") as port:
        status, _, body = get(port, "/sales/1.png")
        check(status == 200 and body.startswith(PNG), "legacy_app.py /sales/1.png")

    with socket.socket() as probe:  # runserver prints the port it was given, so give it a free one
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    runserver = ("runserver", "--noreload", f"127.0.0.1:{free_port}")
    with serving(examples / "django_app.py", r"server at http://127\.0\.0\.1:(\d+)/", *runserver) as port:
        status, _, page = get(port, "/")
        sources = re.findall(rb'src="([^"]+)"', page)
        check(status == 200 and len(sources) == 9, "django_app.py / lists 9 plots")
        for source in sources:
            status, mimetype, body = get(port, source.decode())
            check(status == 200 and mimetype.startswith("image/"), f"django_app.py {source.decode()}")
        check(get(port, "/stats")[2].find(b'"open_figures": 0') > 0, "django_app.py leaves no figure open")

    with serving(examples / "asgi_app.py", r"Uvicorn running on http://127\.0\.0\.1:(\d+)") as port:
        status, _, page = get(port, "/")
        sources = re.findall(rb'src="([^"]+)"', page)
        check(status == 200 and len(sources) == 6, "asgi_app.py / lists 6 plots")
        for source in sources:
            status, mimetype, body = get(port, source.decode())
            check(status == 200 and body.startswith(PNG), f"asgi_app.py {source.decode()}")
        check(get(port, "/stats")[2].find(b'"open_figures":0') > 0, "asgi_app.py leaves no figure open")

    with celery_example(examples) as port:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        connection.request("GET", "/reports/new?region=north")
        enqueued = connection.getresponse()
        enqueued.read()
        location = enqueued.getheader("Location") or ""
        connection.close()
        check(enqueued.status == 303 and location.startswith("/reports/"), "celery_app.py enqueues a report")
        deadline = time.monotonic() + 120
        status, mimetype, body = get(port, location)
        while status == 202 and time.monotonic() < deadline:  # as a client would: ask again
            time.sleep(0.2)
            status, mimetype, body = get(port, location)
        check(status == 200 and mimetype == "image/png" and body.startswith(PNG), "celery_app.py report")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
