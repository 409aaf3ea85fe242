"""safeplot-run: safeplot in every Python process of an unchanged app, with no code change."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import safeplot
from tests.plots import draw_and_save
from tests.servers import ROOT, fetch, fetch_all, free_port, server_process

BIN = Path(sys.executable).parent
LAUNCHER = str(BIN / "safeplot-run")
KINDS = ("line", "styled", "heatmap", "bar")

pytestmark = pytest.mark.skipif(not Path(LAUNCHER).exists(), reason="safeplot-run is not installed here")


def serial(kind: str, seed: int) -> bytes:
    with safeplot.locked():
        return draw_and_save(kind, seed, "png")


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SAFEPLOT_")}
    full_env["PYTHONPATH"] = str(ROOT)
    full_env.update(env or {})
    return subprocess.run(
        [LAUNCHER, *args], capture_output=True, text=True, timeout=120, cwd=ROOT, env=full_env
    )


@pytest.mark.slow(seconds=6)
def test_flask_run_of_an_app_that_never_imports_safeplot_gets_the_middleware() -> None:
    command = [LAUNCHER, "--middleware", str(BIN / "flask"), "--app", "tests.launcher_app", "run"]
    command += ["--with-threads", "--port", "0"]
    with server_process(command, r"Running on http://127\.0\.0\.1:(\d+)") as server:
        paths = [f"/plot/{kind}/{seed}.png" for kind in KINDS for seed in range(3)] * 4
        replies = fetch_all(server.base_url, paths, clients=12)
        stats = fetch(server.base_url, "/stats").json()
    assert [reply.status for reply in replies] == [200] * 48, "".join(server.output[-20:])
    expected = {
        path: serial(path.split("/")[2], int(path.split("/")[3].split(".")[0])) for path in set(paths)
    }
    wrong = [path for path, reply in zip(paths, replies) if reply.body != expected[path]]
    assert wrong == [], f"{len(wrong)} of 48 wrong"
    assert stats == {
        "safeplot_imported": True,
        "middleware": "safeplot.wsgi.SafeplotMiddleware",
        "open_figures": 0,
    }
    assert not any("SafeplotWarning" in line for line in server.output)  # nor matplotlib.use("Agg") at import


def test_guard_warn_names_the_line_of_a_script_that_never_imports_safeplot(tmp_path: Path) -> None:
    script = tmp_path / "report.py"
    script.write_text(
        "import matplotlib\nimport matplotlib.pyplot as plt\n\n"
        "plt.figure()\nplt.plot([1, 2])\nprint(matplotlib.get_backend())\n"
    )
    # "python" found first among safeplot-run's own programs (the venv's), though PATH lacks them
    result = run(
        "--guard", "warn", "python", str(script), env={"MPLBACKEND": "TkAgg", "PATH": "/usr/bin:/bin"}
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "agg"  # forced, whatever MPLBACKEND says
    reports = [line for line in result.stderr.splitlines() if "SafeplotWarning" in line]
    assert [line.split(": SafeplotWarning: ")[1].split(" without")[0] for line in reports] == [
        "pyplot.figure() called",
        "pyplot.plot() called",
    ]
    assert f"at {script}:4;" in reports[0]


def test_raise_and_timeout_reach_the_process_through_the_environment(tmp_path: Path) -> None:
    code = "import safeplot, matplotlib.pyplot as plt\nprint(safeplot.lock.default_timeout)\nplt.figure()\n"
    result = run("--guard", "raise", "--timeout", "2.5", sys.executable, "-c", code)
    assert result.stdout.strip() == "2.5"
    assert result.returncode == 1 and "UnlockedPyplotError: pyplot.figure() called without" in result.stderr


def test_a_sitecustomize_it_hides_still_runs(tmp_path: Path) -> None:
    (tmp_path / "sitecustomize.py").write_text("import builtins\nbuiltins.SITE_RAN = True\n")
    code = "import builtins, sys\nprint(getattr(builtins, 'SITE_RAN', False), 'safeplot' in sys.modules)"
    result = run(sys.executable, "-c", code, env={"PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"})
    assert result.stdout.split() == ["True", "True"], result.stderr


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["no-such-command-xyz"], 127, "safeplot-run: no-such-command-xyz: command not found"),
        (["--timeout", "soon", "python"], 2, "--timeout must be seconds or none, not 'soon'"),
        (["--timeout", "-1", "python"], 2, "--timeout must be >= 0 seconds or None"),
        (["--guard", "loud", "python"], 2, "invalid choice: 'loud'"),
        ([], 2, "the following arguments are required: COMMAND"),
    ],
)
def test_bad_usage_is_refused_with_a_clear_message(args: list[str], code: int, message: str) -> None:
    result = run(*args)
    assert result.returncode == code and message in result.stderr


@pytest.mark.soak
@pytest.mark.slow(seconds=10)
@pytest.mark.parametrize("server", ["gunicorn", "uvicorn", "runserver"])
def test_other_servers_of_unchanged_apps_get_the_middleware(server: str) -> None:
    if server == "gunicorn":
        command = [str(BIN / "gunicorn"), "-k", "gthread", "--threads", "8", "--bind", "127.0.0.1:0"]
        command += ["tests.launcher_app:app"]
        ready, paths = r"Listening at: http://127\.0\.0\.1:(\d+)", "/plot/{kind}/{seed}.png"
    elif server == "uvicorn":
        command = [str(BIN / "uvicorn"), "tests.launcher_asgi_app:app", "--host", "127.0.0.1", "--port", "0"]
        ready, paths = r"Uvicorn running on http://127\.0\.0\.1:(\d+)", "/plot/{kind}/{seed}.png"
    else:
        port = free_port()
        command = [sys.executable, "-m", "django", "runserver", "--noreload", f"127.0.0.1:{port}"]
        ready, paths = r"server at http://127\.0\.0\.1:(\d+)/", "/legacy/{seed}.png"
    env = {"DJANGO_SETTINGS_MODULE": "tests.launcher_django_site"} if server == "runserver" else {}
    with server_process([LAUNCHER, "--middleware", *command], ready, extra_env=env) as running:
        urls = [paths.format(kind=kind, seed=seed) for kind in KINDS for seed in range(3)]
        replies = fetch_all(running.base_url, urls * 2, clients=12)
        reference = [fetch(running.base_url, url).body for url in urls]
    assert [reply.status for reply in replies] == [200] * len(replies), "".join(running.output[-20:])
    assert [reply.body for reply in replies] == reference * 2


def test_an_app_that_adds_the_middleware_itself_gets_it_once() -> None:
    code = "\n".join(
        [
            "from fastapi import FastAPI",
            "from safeplot.asgi import SafeplotMiddleware as Asgi",
            "api = FastAPI()",
            "api.add_middleware(Asgi)",
            "plain = FastAPI()",
            "count = lambda app: sum(m.cls is Asgi for m in app.user_middleware)",
            "print(count(api), count(plain))",
        ]
    )
    result = run("--middleware", sys.executable, "-c", code)
    assert result.stdout.split() == ["1", "1"], result.stderr


def test_a_wsgi_middleware_wrapped_twice_runs_one_group_a_request() -> None:
    from werkzeug.test import Client

    from safeplot.wsgi import SafeplotMiddleware
    from tests import launcher_app

    app = SafeplotMiddleware(SafeplotMiddleware(launcher_app.app.wsgi_app))  # safeplot-run's, then the app's
    client = Client(app)
    before = safeplot.stats()["acquisitions"]
    bodies = [client.get(f"/plot/{kind}/1.png").data for kind in KINDS]
    assert safeplot.stats()["acquisitions"] - before == len(KINDS)
    assert bodies == [serial(kind, 1) for kind in KINDS]


def test_the_outer_of_two_middlewares_holds_the_request_and_its_timeout() -> None:
    # safeplot-run's middleware inside, the app's own (with its timeout) outside
    import asyncio

    from werkzeug.test import Client

    from safeplot.asgi import SafeplotMiddleware as AsgiMiddleware
    from safeplot.wsgi import SafeplotMiddleware
    from tests import launcher_app, launcher_asgi_app
    from tests.conftest import held_by_another_thread

    safeplot.configure(timeout=20)  # what the inner ones would wait
    wsgi = SafeplotMiddleware(SafeplotMiddleware(launcher_app.app.wsgi_app), timeout=0.2)
    asgi = AsgiMiddleware(AsgiMiddleware(launcher_asgi_app.app), timeout=0.2)
    messages: list[dict[str, Any]] = []

    async def call_asgi() -> None:
        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            messages.append(message)

        scope = {
            "type": "http",
            "method": "GET",
            "path": "/plot/line/1.png",
            "headers": [],
            "query_string": b"",
        }
        await asgi(scope, receive, send)

    started = time.monotonic()
    with held_by_another_thread():
        wsgi_reply = Client(wsgi).get("/plot/line/1.png")
        asyncio.run(call_asgi())
    assert time.monotonic() - started < 10
    assert wsgi_reply.status_code == 503 and messages[0]["status"] == 503


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("SAFEPLOT_GUARD", "loud", "ValueError: SAFEPLOT_GUARD='loud': expected one of warn, raise, off"),
        ("SAFEPLOT_TIMEOUT", "-3", "ValueError: SAFEPLOT_TIMEOUT='-3': expected a number of seconds >= 0"),
        ("SAFEPLOT_MIDDLEWARE", "maybe", "ValueError: SAFEPLOT_MIDDLEWARE='maybe': expected one of 1, true,"),
    ],
)
def test_a_bad_variable_in_the_environment_is_refused_before_the_command_runs(
    variable: str, value: str, message: str
) -> None:
    result = run(sys.executable, "-c", "print('ran')", env={variable: value})
    assert result.returncode == 1 and message in result.stderr and "ran" not in result.stdout
