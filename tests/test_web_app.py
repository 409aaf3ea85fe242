"""The example plot server, run for real: load, hostile input, memory, and a real browser."""

from __future__ import annotations

import functools
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import parse_qs

import pytest

from examples.wsgi_app import PLOTS, VIEW_OPTIONS, parse_params, plot_bytes
from tests.conftest import run_python, scaled
from tests.servers import ServerProcess, example_server, fetch, fetch_all, gunicorn_server, server_process

SMALL = "width=3&height=2&dpi=50&n=60"
LOAD_FORMATS = ("png", "svg", "pdf")


def load_paths(total: int, formats: tuple[str, ...] = LOAD_FORMATS) -> list[str]:
    """``total`` requests spread over every kind and format, two seeds each, shuffled."""
    distinct = [
        f"/plot/{kind}.{fmt}?{SMALL}&seed={seed}" for kind in PLOTS for fmt in formats for seed in (1, 2)
    ]
    paths = (distinct * (total // len(distinct) + 1))[:total]
    random.Random(0).shuffle(paths)
    return paths


@functools.cache  # the load tests of one worker share their expected images
def serial_render(path: str) -> bytes:
    """What the server should answer for a /plot path, rendered here, one at a time."""
    match = re.fullmatch(r"/plot/(\w+)\.(\w+)\?(.*)", path)
    assert match
    kind, fmt, query = match.groups()
    return plot_bytes(kind, fmt, parse_params(parse_qs(query, keep_blank_values=True)))


LOAD_REQUESTS = 32  # of the 48 kinds x formats x seeds; nox -s soak runs 5x as many (all of them)


def assert_load_served_correctly(server: ServerProcess, total: int = LOAD_REQUESTS) -> None:
    paths = load_paths(scaled(total))
    expected = {path: serial_render(path) for path in set(paths)}
    replies = fetch_all(server.base_url, paths, clients=16)
    statuses = sorted({reply.status for reply in replies})
    assert statuses == [200], f"statuses {statuses}: {''.join(server.output[-20:])}"
    wrong = [path for path, reply in zip(paths, replies) if reply.body != expected[path]]
    assert wrong == [], f"{len(wrong)}/{len(paths)} images differ from the serial render: {wrong[:5]}"
    for _ in range(4):  # under gunicorn each reply comes from one of the workers
        stats = fetch(server.base_url, "/stats").json()
        assert stats["open_figures"] == 0 and stats["holder"] is None


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with example_server() as running:
        yield running


def test_page_health_and_stats(server: ServerProcess) -> None:
    page = fetch(server.base_url, "/")
    assert page.status == 200 and page.headers["content-type"].startswith("text/html")
    sources = re.findall(rb'<img src="([^"]+)"', page.body)
    assert len(sources) >= 8
    for source in sources:
        reply = fetch(server.base_url, source.decode().replace("&amp;", "&"))
        assert reply.status == 200 and reply.headers["content-type"] == "image/png"
    assert fetch(server.base_url, "/healthz").body == b"ok\n"
    assert set(fetch(server.base_url, "/stats").json()) >= {"acquisitions", "open_figures", "holder"}


@pytest.mark.soak  # in nox -s soak (CI): the legacy app's load test covers werkzeug in every run
@pytest.mark.slow(seconds=6)
def test_werkzeug_threaded_server_under_load_matches_serial_render(server: ServerProcess) -> None:
    assert_load_served_correctly(server)


@pytest.mark.soak  # in nox -s soak (CI), to keep the default run short
@pytest.mark.slow(seconds=6)
def test_gunicorn_two_preloaded_workers_under_load_match_serial_render() -> None:
    with gunicorn_server(workers=2) as running:
        assert_load_served_correctly(running)


@pytest.mark.soak  # a third server for the same app: werkzeug's and gunicorn's run by default
@pytest.mark.slow(seconds=6)
def test_waitress_serves_the_same_app() -> None:
    command = [
        sys.executable,
        "-m",
        "waitress",
        "--listen=127.0.0.1:0",
        "--threads=8",
        "examples.wsgi_app:app",
    ]
    with server_process(command, r"Serving on http://127\.0\.0\.1:(\d+)") as running:
        paths = load_paths(scaled(16))  # the load itself is the other servers' test
        replies = fetch_all(running.base_url, paths, clients=8)
        assert [reply.body for reply in replies] == [serial_render(path) for path in paths]


HOSTILE_QUERIES = [
    # (path, expected status)
    ("/plot/line.png?n=-1", 400),
    ("/plot/line.png?n=0", 400),
    ("/plot/line.png?n=100001", 400),
    ("/plot/line.png?n=99999999999999999999", 400),
    ("/plot/line.png?n=1e3", 400),
    ("/plot/line.png?n=NaN", 400),
    ("/plot/line.png?n=inf", 400),
    ("/plot/line.png?n=", 400),
    ("/plot/line.png?n=%20%205", 400),
    ("/plot/line.png?n=%EF%BC%95", 400),  # fullwidth digit five
    ("/plot/line.png?n=1_000", 400),
    ("/plot/line.png?n=0x10", 400),
    ("/plot/line.png?seed=-5", 400),
    ("/plot/line.png?seed=4294967296", 400),
    ("/plot/line.png?width=nan", 400),
    ("/plot/line.png?width=-3", 400),
    ("/plot/line.png?width=0", 400),
    ("/plot/line.png?width=21", 400),
    ("/plot/line.png?height=1e309", 400),
    ("/plot/line.png?height=Infinity", 400),
    ("/plot/line.png?dpi=301", 400),
    ("/plot/line.png?dpi=9", 400),
    ("/plot/line.png?dpi=72.5", 400),
    ("/plot/line.png?width=20&height=20&dpi=300", 400),  # 36 megapixels
    ("/plot/line.png?width=20&height=20&dpi=201", 400),
    ("/plot/line.png?title=" + "x" * 201, 400),
    ("/plot/line.png?title=%24%5Cfrac%7B%24", 400),  # $\frac{$
    ("/plot/line.png?title=%24%5Cnosuchcommand%24", 400),
    ("/plot/line.png?title=%24%5E%5E%5E%24", 400),  # $^^^$
    ("/plot/line.png?title=%24%7B%24", 400),  # ${$
    ("/plot/line.png?title=%24" + "%7B" * 90 + "%24", 400),
    ("/plot/line.png?title=%24a%5Chspace%7B3000000%7Db%24", 400),  # $a\hspace{3000000}b$: FreeType overflow
    ("/plot/line.jpeg?title=%24a%5Chspace%7B3000000%7Db%24", 400),
    ("/plot/line.jpeg?title=%24a%5Chspace%7B-3000000%7Db%24", 400),
    ("/plot/line.png?title=%24a%5Chspace%7B-3000000%7Db%5Chspace%7B3000000%7D%24", 400),
    ("/plot/line.png?title=%24%24", 400),  # $$
    ("/plot/line.png?title=a%00b", 400),
    ("/plot/line.png?title=%1B%5B31m", 400),
    ("/plot/line.png?title=1&title=2", 400),
    ("/plot/line.png?colour=red", 400),
    ("/plot/line.png?%FF%FE=1", 400),
    ("/plot/line.png?n=%FF", 400),
    ("/plot/scatter.pdf?n=100000&width=20&height=20&dpi=200", 400),  # once 140x a default request
    ("/plot/scatter.svg?n=100000", 400),
    ("/plot/line.png?n=100000&width=20&height=20&dpi=200", 400),
    ("/plot/heatmap.png?width=20&height=20&dpi=200", 400),
    ("/plot/nosuch.png", 404),
    ("/plot/line.gif", 404),
    ("/plot/line.PNG", 404),
    ("/plot/line", 404),
    ("/plot/.png", 404),
    ("/plot/..%2F..%2Fetc%2Fpasswd.png", 404),
    ("/plot/../../etc/passwd.png", 404),
    ("/plot/line.png/extra", 404),
    ("/plot/%E2%88%9E.png", 404),
    ("/plot/__init__.png", 404),
    ("/plot/line.png.png", 404),
    ("/plot/" + "a" * 5000 + ".png", 404),
]


def test_hostile_queries_get_400_or_404_and_the_server_stays_healthy(server: ServerProcess) -> None:
    replies = fetch_all(server.base_url, [path for path, _ in HOSTILE_QUERIES], clients=8)
    wrong = [
        (path[:80], reply.status, reply.body[:200])
        for (path, expected), reply in zip(HOSTILE_QUERIES, replies)
        if reply.status != expected
    ]
    assert wrong == []
    for (path, _), reply in zip(HOSTILE_QUERIES, replies):
        assert reply.headers["content-type"] == "text/plain; charset=utf-8", path[:80]
        assert re.fullmatch(rb"40[04] [A-Za-z ]+: \S[^\n]*\S\n", reply.body), (path[:80], reply.body)
        assert not reply.body.rstrip().endswith(b":"), (path[:80], reply.body)  # a reason after each colon
    assert fetch(server.base_url, "/healthz").status == 200
    good = f"/plot/line.png?{SMALL}&seed=3&title=%24%5Calpha%5E2%24%20and%20%E2%88%9E%20%E6%97%A5"
    assert fetch(server.base_url, good).body == serial_render(good)
    assert fetch(server.base_url, "/stats").json()["open_figures"] == 0


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "FOO"])
def test_methods_other_than_get_and_head_are_405(server: ServerProcess, method: str) -> None:
    reply = fetch(server.base_url, f"/plot/line.png?{SMALL}", method=method)
    assert reply.status == 405 and reply.headers["allow"] == "GET, HEAD"
    assert reply.headers["content-type"] == "text/plain; charset=utf-8"
    assert reply.body.startswith(b"405 Method Not Allowed: ")


def test_head_answers_like_get_without_a_body(server: ServerProcess) -> None:
    path = f"/plot/bar.png?{SMALL}"
    head = fetch(server.base_url, path, method="HEAD")
    assert head.status == 200 and head.body == b""
    assert head.headers["content-length"] == str(len(serial_render(path)))


# Tiny plots: what is measured is what a request leaves behind, not how big its plot is.
TINY_KINDS = ("line", "bar", "scatter", "pie")
TINY = [f"/plot/{k}.png?width=1&height=1&dpi=30&n=20&seed={i % 7}" for i in range(400) for k in TINY_KINDS]
WARM_UP = 200  # fills matplotlib's bounded caches (text layout: 4096 entries) first
BATCHES, BATCH = 8, scaled(20)
# Per request. No leak measures about 0-3 KiB; a leak of 16 KB per request about 16. A leak of
# 5 KB per request hides in the holes freed figures leave in the heap for this many requests.
MAX_SLOPE_KIB = 8.0
LEAK_BYTES = 16_000


def rss_slope_kib_per_request(server: ServerProcess) -> tuple[float, list[int]]:
    """The server's RSS growth per request: the median of its growth from batch to batch, after a warm-up.

    A leak raises every batch's growth, while a one-time step (a cache, an
    arena or the heap's high-water mark growing once) moves only one of the
    seven: the median ignores up to three of them.

    Test servers run with MALLOC_ARENA_MAX=2, so that glibc's per-thread
    arenas do not add megabytes of noise as 16 client threads come and go.
    """
    assert {reply.status for reply in fetch_all(server.base_url, TINY[:WARM_UP], clients=16)} == {200}
    rss = []
    for batch in range(BATCHES):
        paths = TINY[WARM_UP + batch * BATCH : WARM_UP + (batch + 1) * BATCH]
        assert {reply.status for reply in fetch_all(server.base_url, paths, clients=16)} == {200}
        rss.append(server.rss_kib())
    growth = [(after - before) / BATCH for before, after in zip(rss, rss[1:])]
    return statistics.median(growth), rss


NO_GIL = not getattr(sys, "_is_gil_enabled", lambda: True)()
MIMALLOC = "free-threaded CPython allocates with mimalloc: its RSS swings by megabytes between batches"


@pytest.mark.soak  # in nox -s soak (CI), to keep the default run short
@pytest.mark.skipif(NO_GIL, reason=MIMALLOC)
@pytest.mark.slow(seconds=12)
def test_rss_stays_flat_request_after_request(server: ServerProcess, report: Callable[[str], None]) -> None:
    slope, rss = rss_slope_kib_per_request(server)
    measured = f"RSS slope {slope:+.2f} KiB/request over {BATCHES * BATCH} requests (RSS KiB {rss})"
    report(measured)
    assert slope < MAX_SLOPE_KIB, measured
    assert fetch(server.base_url, "/stats").json()["open_figures"] == 0


@pytest.mark.skipif(NO_GIL, reason=MIMALLOC)
@pytest.mark.soak  # proves the test above can fail
@pytest.mark.slow(seconds=12)
def test_the_rss_slope_catches_a_leak_of_16_kb_per_request(report: Callable[[str], None]) -> None:
    leaky = (
        "import examples.wsgi_app as example\n"
        "kept = []\n"
        "def leaky_app(environ, start_response):\n"
        f"    kept.append(bytearray({LEAK_BYTES}))\n"
        "    return example.app(environ, start_response)\n"
        "example.serve(leaky_app, '127.0.0.1', 0)\n"
    )
    with server_process([sys.executable, "-c", leaky], r"serving on http://127\.0\.0\.1:(\d+)/") as running:
        slope, rss = rss_slope_kib_per_request(running)
    report(f"with a {LEAK_BYTES // 1000} KB-per-request leak: RSS slope {slope:+.2f} KiB/request")
    assert slope > MAX_SLOPE_KIB, rss


def test_lock_timeout_is_10_s_unless_safeplot_timeout_says_otherwise() -> None:
    assert VIEW_OPTIONS == {"timeout": 10.0}  # this process has no SAFEPLOT_TIMEOUT
    code = (
        "import threading, time\n"
        "import safeplot\n"
        "from examples.wsgi_app import Params, plot_response\n"
        "held, done = threading.Event(), threading.Event()\n"
        "def hold():\n"
        "    with safeplot.lock:\n"
        "        held.set(); done.wait(60)\n"
        "threading.Thread(target=hold).start(); held.wait(60)\n"
        "started = time.monotonic()\n"
        "response = plot_response('line', 'png', Params())\n"
        "print(response.status_code, response.headers['Retry-After'], round(time.monotonic() - started, 1))\n"
        "done.set()\n"
    )
    result = run_python(code, env={"SAFEPLOT_TIMEOUT": "0.3"})
    assert result.returncode == 0, result.stderr
    status, retry_after, waited = result.stdout.split()
    assert (status, retry_after) == ("503", "1")
    assert 0.3 <= float(waited) < 5


def find_chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def run_chromium(chromium: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--disable-sync",
        f"--user-data-dir={profile}",
    ]
    return subprocess.run([chromium, *flags, *args], capture_output=True, text=True, timeout=120)


@pytest.mark.slow(seconds=4)
def test_real_browser_loads_every_plot_on_the_page(server: ServerProcess, tmp_path: Path) -> None:
    chromium = find_chromium()
    if chromium is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing in CI: .ci/run installs Debian's chromium package")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    url = server.base_url + "/"
    dom = run_chromium(chromium, tmp_path / "profile-dom", "--virtual-time-budget=30000", "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    captions = re.findall(r'<figcaption data-kind="(\w+)">([^<]*)</figcaption>', dom.stdout)
    assert len(captions) == len(PLOTS) >= 8
    for kind, text in captions:
        size = re.fullmatch(rf"{kind}: loaded (\d+)x(\d+)", text)
        assert size and int(size.group(1)) > 0 and int(size.group(2)) > 0, (kind, text)
    assert f"{len(PLOTS)}/{len(PLOTS)} plots loaded" in dom.stdout

    screenshot = tmp_path / "page.png"
    shot = run_chromium(
        chromium,
        tmp_path / "profile-shot",
        "--virtual-time-budget=30000",
        "--window-size=1280,800",
        f"--screenshot={screenshot}",
        url,
    )
    assert shot.returncode == 0, shot.stderr[-2000:]
    assert screenshot.read_bytes().startswith(b"\x89PNG") and screenshot.stat().st_size > 10_000
    assert fetch(server.base_url, "/stats").json()["open_figures"] == 0
