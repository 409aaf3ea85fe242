"""gevent and eventlet: one group per greenlet, waits that yield to the hub, whether safeplot was
imported before the patching or after (gunicorn's gevent worker with and without --preload)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

import safeplot
from tests.conftest import scaled
from tests.plots import draw
from tests.servers import ROOT, ServerProcess, fetch, fetch_all, server_process

pytest.importorskip("gevent")
pytestmark = pytest.mark.xdist_group("gevent-servers")
KINDS = ("line", "styled", "heatmap", "bar")


def expected(kind: str, seed: int) -> bytes:
    import io

    import matplotlib.pyplot as plt

    with safeplot.locked():
        draw(kind, seed)
        plt.xlabel(f"after I/O {seed}")
        buffer = io.BytesIO()
        plt.savefig(buffer, format="png")
        return buffer.getvalue()


# --preload imports safeplot before the worker patches threading: the hard case, in every run;
# the other variants (and the spawn scripts) run in nox -s soak.
@pytest.fixture(scope="module", params=["preload", pytest.param("no-preload", marks=pytest.mark.soak)])
def gevent_site(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    command = [sys.executable, "-m", "gunicorn", "-k", "gevent", "-w", "1", "--worker-connections", "200"]
    command += ["--graceful-timeout", "1"]
    command += ["--preload"] if request.param == "preload" else []
    command += ["--bind", "127.0.0.1:0", "tests.gevent_site:app"]
    with server_process(command, r"Listening at: http://127\.0\.0\.1:(\d+)") as server:
        yield server


@pytest.mark.slow(seconds=8)
def test_greenlets_doing_io_mid_plot_get_the_bytes_of_a_serial_run(gevent_site: ServerProcess) -> None:
    paths = [f"/plot/{kind}/{seed}.png" for kind in KINDS for seed in range(8)] * max(1, scaled(32) // 32)
    replies = fetch_all(gevent_site.base_url, paths, clients=32)
    assert [reply.status for reply in replies] == [200] * len(paths), "".join(gevent_site.output[-20:])
    serial = {
        path: expected(path.split("/")[2], int(path.split("/")[3].split(".")[0])) for path in set(paths)
    }
    wrong = [path for path, reply in zip(paths, replies) if reply.body != serial[path]]
    assert wrong == [], f"{len(wrong)} of {len(paths)} wrong"
    stats = fetch(gevent_site.base_url, "/stats").json()
    assert stats["open_figures"] == 0 and stats["holder"] is None


@pytest.mark.soak  # in nox -s soak (CI), to keep the default run short
@pytest.mark.slow(seconds=4)
def test_a_request_holding_the_lock_across_io_keeps_it_and_waiters_never_freeze_the_worker(
    gevent_site: ServerProcess,
) -> None:
    base = gevent_site.base_url
    holder = threading.Thread(target=fetch, args=(base, "/hold"), name="holder")
    holder.start()
    waits_before = int(fetch(base, "/waiting").body)
    busy: list[tuple[int, str | None, float]] = []

    def plot(seed: int) -> None:
        started = time.monotonic()
        reply = fetch(base, f"/short/line/{seed}.png")
        busy.append((reply.status, reply.headers.get("retry-after"), time.monotonic() - started))

    waiters = [threading.Thread(target=plot, args=(seed,)) for seed in range(4)]
    try:
        while fetch(base, "/holding").body != b"holding=True\n":  # a server-side flag, polled over HTTP
            assert holder.is_alive()
        for waiter in waiters:
            waiter.start()
        while int(fetch(base, "/waiting").body) < waits_before + 4:  # all four wait for the lock now
            assert any(waiter.is_alive() for waiter in waiters)
        started = time.monotonic()
        healthz = fetch(base, "/healthz")
        healthz_seconds = time.monotonic() - started
        stats = fetch(base, "/stats").json()
        for waiter in waiters:
            waiter.join(30)
    finally:
        fetch(base, "/release")
        holder.join(30)
    assert healthz.status == 200 and healthz_seconds < 0.5  # waiting greenlets yield to the hub
    assert stats["holder"] == "GET /hold"
    assert [(status, retry) for status, retry, _ in busy] == [(503, "1")] * 4
    assert all(1.0 <= seconds < 10 for _, _, seconds in busy)
    assert fetch(base, "/short/line/1.png").status == 200  # the hold ended with its request


@pytest.mark.parametrize(
    ("library", "order"),
    [
        pytest.param("gevent", "before", marks=pytest.mark.soak),
        pytest.param("gevent", "after", marks=pytest.mark.soak),
        pytest.param("eventlet", "before", marks=pytest.mark.soak),
        pytest.param("eventlet", "after", marks=pytest.mark.soak),
    ],
)
@pytest.mark.slow(seconds=3)
def test_a_spawn_script_with_safeplot_imported_before_or_after_patching(library: str, order: str) -> None:
    if library == "eventlet":
        pytest.importorskip("eventlet")
    result = subprocess.run(
        [sys.executable, "-W", "ignore", str(ROOT / "tests" / "green_script.py"), library, order],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "0 of 30 wrong, 0 figures open", result.stdout
    assert lines[1].startswith("LockTimeout after the holder ran on: held by greenlet "), result.stdout
