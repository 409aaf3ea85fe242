"""Real servers on 127.0.0.1 with free ports, and a small HTTP client, for tests and benchmarks."""

from __future__ import annotations

import http.client
import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from werkzeug.serving import WSGIRequestHandler, make_server

ROOT = Path(__file__).resolve().parent.parent


class Reply:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body)


def fetch(base_url: str, path: str, *, timeout: float = 60, method: str = "GET") -> Reply:
    """GET (or another method) base_url + path on a fresh connection."""
    address = urlsplit(base_url)
    connection = http.client.HTTPConnection(address.hostname or "", address.port, timeout=timeout)
    try:
        connection.request(method, path)
        response = connection.getresponse()
        body = response.read()
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, body)
    finally:
        connection.close()


def fetch_all(base_url: str, paths: Sequence[str], *, clients: int = 16) -> list[Reply]:
    """GET every path with this many concurrent clients; replies in the order of paths."""
    with ThreadPoolExecutor(max_workers=clients) as pool:
        return list(pool.map(lambda path: fetch(base_url, path), paths))


class DropRecordingHandler(WSGIRequestHandler):
    """werkzeug's request handler, counting connections the client dropped mid-response."""

    dropped = threading.Semaphore(0)

    def connection_dropped(self, error: BaseException, environ: Any = None) -> None:
        type(self).dropped.release()


@contextmanager
def werkzeug_server(app: Any, handler: type[WSGIRequestHandler] | None = None) -> Iterator[str]:
    """werkzeug's threaded server in this process; yields its base URL, stops at the end."""
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=handler)
    server.daemon_threads = False  # so that server_close() joins every request thread
    thread = threading.Thread(target=server.serve_forever, name="werkzeug-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


class ServerProcess:
    def __init__(self, process: subprocess.Popen[str], base_url: str, output: list[str]) -> None:
        self.process = process
        self.base_url = base_url
        self.output = output  # every line the server printed, kept for failure messages

    def rss_kib(self, pid: int | None = None) -> int:
        """Resident memory of the server (or of one of its processes), from /proc."""
        with open(f"/proc/{pid or self.process.pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError("no VmRSS in /proc status")


@contextmanager
def server_process(
    command: Sequence[str], ready: str, *, timeout: float = 60, extra_env: Mapping[str, str] | None = None
) -> Iterator[ServerProcess]:
    """Start a server process; ``ready`` is a regex whose group 1 is the port it listens on.

    Waits for that line (at most ``timeout`` seconds), yields, then stops the
    process with SIGTERM (SIGKILL if it lingers) and reaps it.  ``extra_env``
    is added to the environment last.
    """
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # The example answers 503 after 10 s in the lock's queue. On a slow machine
    # that also runs other tests, 16 clients can queue longer than that; let
    # them wait instead (short of fetch()'s 60 s), so that load tests see no 503.
    env["SAFEPLOT_TIMEOUT"] = "50"
    env["MALLOC_ARENA_MAX"] = os.environ.get("MALLOC_ARENA_MAX", "2")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update(extra_env or {})
    process = subprocess.Popen(
        list(command), cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines: queue.Queue[str | None] = queue.Queue()
    output: list[str] = []

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line)
            lines.put(line)
        lines.put(None)

    reader = threading.Thread(target=pump, name="server-output", daemon=True)
    reader.start()
    try:
        port = None
        while port is None:
            try:
                line = lines.get(timeout=timeout)
            except queue.Empty:
                raise TimeoutError(f"{command[0]} did not start in {timeout} s: {''.join(output)}") from None
            if line is None:
                raise RuntimeError(f"{command[0]} exited: {''.join(output)}")
            match = re.search(ready, line)
            if match:
                port = int(match.group(1))
        yield ServerProcess(process, f"http://127.0.0.1:{port}", output)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(15)
        reader.join(15)


def example_server() -> Any:
    """The example app under werkzeug's threaded server, as a separate process."""
    return server_process(
        [sys.executable, str(ROOT / "examples" / "wsgi_app.py"), "--port", "0"],
        r"serving on http://127\.0\.0\.1:(\d+)/",
    )


def gunicorn_server(workers: int = 2) -> Any:
    """The example app under gunicorn gthread with --preload."""
    return server_process(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-k",
            "gthread",
            "--threads",
            "8",
            "-w",
            str(workers),
            "--preload",
            "--bind",
            "127.0.0.1:0",
            "examples.wsgi_app:app",
        ],
        r"Listening at: http://127\.0\.0\.1:(\d+)",
    )


def free_port() -> int:
    """A port free on 127.0.0.1 just now, for servers that cannot bind port 0 and report it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


DJANGO_TEST_SITE = "tests.django_site"


def django_server(server: str, site: str | None = None, env: Mapping[str, str] | None = None) -> Any:
    """A Django site under ``runserver`` (threaded, no reloader) or gunicorn gthread (one worker).

    ``site`` None is examples/django_app.py; else a settings module such as
    DJANGO_TEST_SITE.
    """
    settings_env = {"DJANGO_SETTINGS_MODULE": site} if site else {}
    if server == "runserver":
        port = free_port()
        manage = [str(ROOT / "examples" / "django_app.py")] if site is None else ["-m", "django"]
        command = [sys.executable, *manage, "runserver", "--noreload", f"127.0.0.1:{port}"]
        ready = r"server at http://127\.0\.0\.1:(\d+)/"  # Django 6: "Starting WSGI development server"
    elif server == "gunicorn":
        app = "examples.django_app:application" if site is None else "django.core.wsgi:get_wsgi_application()"
        command = [
            *(sys.executable, "-m", "gunicorn", "-k", "gthread", "--threads", "16", "-w", "1"),
            *("--bind", "127.0.0.1:0", app),
        ]
        ready = r"Listening at: http://127\.0\.0\.1:(\d+)"
    else:
        raise ValueError(f"unknown server {server!r}")
    return server_process(command, ready, extra_env={**settings_env, **(env or {})})


def uvicorn_server(app: str | None = None, env: Mapping[str, str] | None = None) -> Any:
    """An ASGI app under uvicorn: ``app`` as "module:attribute", None for examples/asgi_app.py."""
    if app is None:
        command = [sys.executable, str(ROOT / "examples" / "asgi_app.py"), "--port", "0"]
    else:
        command = [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", "0"]
    return server_process(command, r"Uvicorn running on http://127\.0\.0\.1:(\d+)", extra_env=env)


@contextmanager
def lock_held(server: ServerProcess) -> Iterator[None]:
    """A test site's lock held by one of its request threads for the duration of the block.

    The site serves ``/hold`` (holds the lock until released), ``/wait/held``
    and ``/set/release``, synchronised with Events in the server process.
    """
    holder = threading.Thread(target=fetch, args=(server.base_url, "/hold"), name="holder")
    holder.start()
    try:
        assert fetch(server.base_url, "/wait/held").body == b"held=True\n"
        yield
    finally:
        fetch(server.base_url, "/set/release")
        holder.join(30)
    assert not holder.is_alive()


@contextmanager
def redis_server() -> Iterator[str]:
    """Debian's redis-server on a free port of 127.0.0.1, nothing saved; yields its URL, stops at the end.

    Raises FileNotFoundError when redis-server is not installed.
    """
    program = shutil.which("redis-server")
    if program is None:
        raise FileNotFoundError("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    command = [program, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if "Ready to accept connections" in line:
                break
        else:
            raise RuntimeError("redis-server exited before it was ready")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(15)


@contextmanager
def celery_worker(
    redis_url: str, pool: str, concurrency: int, *, queue: str = "celery"
) -> Iterator[subprocess.Popen[str]]:
    """A real worker of tests.celery_site (``celery worker -P pool -c concurrency -Q queue``).

    Yields once the worker answers a ping (at most 60 s); terminates it at the end.
    """
    os.environ["SAFEPLOT_TEST_REDIS"] = redis_url  # read by tests.celery_site when first imported
    from tests import celery_site

    celery_site.app.conf.broker_url = celery_site.app.conf.result_backend = redis_url
    name = f"{pool}-{uuid.uuid4().hex[:6]}@safeplot-tests"
    command = [sys.executable, "-m", "celery", "-A", "tests.celery_site", "worker", "-P", pool, "-Q", queue]
    command += ["-c", str(concurrency), "-n", name, "--without-gossip", "--without-mingle", "-l", "warning"]
    env = {**os.environ, "SAFEPLOT_TEST_REDIS": redis_url, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline = time.monotonic() + 60
        while not celery_site.app.control.ping(destination=[name], timeout=0.5):
            if process.poll() is not None:
                raise RuntimeError(
                    f"the {pool} worker exited: {process.stdout.read() if process.stdout else ''}"
                )
            if time.monotonic() > deadline:
                raise TimeoutError(f"the {pool} worker did not answer a ping in 60 s")
        yield process
    finally:
        process.send_signal(signal.SIGQUIT)  # a cold shutdown: the tests are done with its tasks
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(15)
