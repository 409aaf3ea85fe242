"""Many threads drawing at once through safeplot.locked() get exactly the serial bytes."""

from __future__ import annotations

import threading

import matplotlib
import pytest
from matplotlib._pylab_helpers import Gcf

import safeplot
from tests.conftest import scaled
from tests.plots import FORMATS, KINDS, draw_and_save

THREADS = 8
RENDERS_PER_THREAD = scaled(4)


def job(thread: int, n: int) -> tuple[str, int, str]:
    index = thread * RENDERS_PER_THREAD + n
    return KINDS[index % len(KINDS)], index, FORMATS[index % len(FORMATS)]


@pytest.mark.slow(seconds=10)
def test_threads_render_byte_identical_to_serial() -> None:
    rc_before = dict(matplotlib.rcParams)
    jobs = [job(t, n) for t in range(THREADS) for n in range(RENDERS_PER_THREAD)]
    expected = {}
    for kind, seed, fmt in jobs:
        with safeplot.locked():
            expected[seed] = draw_and_save(kind, seed, fmt)

    results: dict[int, bytes] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(THREADS)

    def worker(thread: int) -> None:
        start.wait()
        try:
            for n in range(RENDERS_PER_THREAD):
                kind, seed, fmt = job(thread, n)
                with safeplot.locked():
                    results[seed] = draw_and_save(kind, seed, fmt)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(t,), name=f"render-{t}") for t in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert len(results) == THREADS * RENDERS_PER_THREAD
    wrong = sorted(seed for seed in expected if results[seed] != expected[seed])
    assert wrong == [], f"{len(wrong)} renders differ from the serial render: {wrong[:10]}"
    assert len(set(expected.values())) == len(expected), "plots were meant to be distinct"
    assert len(Gcf.figs) == 0
    assert dict(matplotlib.rcParams) == rc_before
    assert safeplot.stats()["holder"] is None
