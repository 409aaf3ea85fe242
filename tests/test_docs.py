"""Every code block of the README, CONTRIBUTING.md and the docs, run as a reader would run it.

The pages are run by ``nox -s docs`` (which CI runs), each in a fresh copy of
the repository (its tracked files, and new ones not ignored), block by block:

- a ``python`` block whose first line names a file (``# app.py``) is written
  to that file, for the commands after it; any other ``python`` block runs as
  a script, with the page's ``.venv`` once a command of the page has made one;
- each line of an ``sh`` block runs as written (lines ending in ``\\`` are
  joined), in order.  A line whose comment names ``http://127.0.0.1:PORT/...``
  is a server: it must answer that URL with 200 (following redirects; 202,
  503 and refused connections are asked again) and runs until the page is
  done, then gets SIGINT.  A line whose comment says ``leave it running``
  must still run then.  Every other line must exit 0;
- port numbers (``8000``-``8999``, ``6379``) are replaced by free ports,
  the same number by the same port throughout a page;
- ``<!-- not run: REASON -->`` on the line before a block skips it; the
  reasons are listed in the run's summary.

Blocks in other languages (``text``, none) are output or layouts, not code.
The quick checks at the end run in the README's test command.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pytest

from tests.servers import free_port

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").rglob("*.md"))]
PAGES = [page for page in PAGES if "_build" not in page.parts]
RUN = {"python", "sh"}
FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>\S*)[ \t]*$")
NOT_RUN = re.compile(r"^\s*<!--\s*not run:\s*(?P<reason>.+?)\s*-->\s*$")
FILE_LINE = re.compile(r"^#\s*(?P<name>[\w./-]+\.py)\s*$")
URL_COMMENT = re.compile(r"#.*?(?P<url>http://127\.0\.0\.1:\d+/\S*)")
PORT = re.compile(r"(?<![\d.])(?:8\d{3}|6379)(?!\d)")
INSTALL = "python3 -m venv .venv && .venv/bin/pip install"
SERVER_SECONDS = 120  # a server's first answer (pip-installed apps import slowly on a loaded machine)
COMMAND_SECONDS = 900  # an install line, or a script


@dataclass
class Block:
    page: Path
    line: int  # of the opening fence, 1-based
    lang: str
    text: str
    not_run: str | None

    @property
    def where(self) -> str:
        page = self.page.relative_to(ROOT) if self.page.is_relative_to(ROOT) else self.page
        return f"{page}:{self.line}"

    @property
    def file(self) -> str | None:
        """The file a python block is written to, if its first line names one."""
        first = self.text.splitlines()[0] if self.text.strip() else ""
        match = FILE_LINE.match(first)
        return match.group("name") if self.lang == "python" and match else None


def blocks(page: Path) -> list[Block]:
    """The fenced blocks of a Markdown page, in order (MyST directives, ```{...}, left out)."""
    lines = page.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        indent, lang = opening.group("indent"), opening.group("lang")
        end = index + 1
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        body = [line[len(indent) :] if line.startswith(indent) else line for line in lines[index + 1 : end]]
        before = NOT_RUN.match(lines[index - 1]) if index > 0 else None
        if not lang.startswith("{"):
            found.append(
                Block(page, index + 1, lang, "\n".join(body) + "\n", before and before.group("reason"))
            )
        index = end + 1
    return found


def commands(text: str) -> list[str]:
    """The commands of an sh block: one a line, continuation lines joined."""
    joined: list[str] = []
    pending = ""
    for line in text.splitlines():
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        command = (pending + line).strip()
        pending = ""
        if command and not command.startswith("#"):
            joined.append(command)
    return joined


def runnable_pages() -> list[Path]:
    return [page for page in PAGES if any(b.lang in RUN and not b.not_run for b in blocks(page))]


def fresh_copy(target: Path) -> Path:
    """The repository's files as a fresh clone has them (plus new files not ignored), in target."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def reader_environment() -> dict[str, str]:
    """The environment of a reader's shell: none of this test run's virtualenv, paths or settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SAFEPLOT_", "PYTEST_", "VIRTUAL_ENV"))}
    env.pop("PYTHONPATH", None)
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    return env


class PageRun:
    """One page's blocks run in order in a fresh copy, with the servers they start stopped at the end."""

    def __init__(self, page: Path, copy: Path) -> None:
        self.page = page
        self.copy = copy
        self.ports: dict[str, str] = {}
        self.running: list[tuple[subprocess.Popen[bytes], str, Path]] = []
        self.env = reader_environment()
        self.logs = copy / ".page-logs"
        self.logs.mkdir()

    def ported(self, text: str) -> str:
        return PORT.sub(lambda m: self.ports.setdefault(m.group(), str(free_port())), text)

    def log(self, name: str) -> tuple[Path, IO[bytes]]:
        path = self.logs / f"{len(list(self.logs.iterdir())):02d}-{name}.log"
        return path, path.open("wb")

    def run(self) -> None:
        for block in blocks(self.page):
            if block.not_run or block.lang not in RUN:
                continue
            if block.lang == "python":
                self.python(block)
            else:
                for command in commands(block.text):
                    self.command(block, self.ported(command))
        for process, command, log in self.running:
            assert process.poll() is None, f"{command!r} stopped before the page was done:\n{tail(log)}"

    def python(self, block: Block) -> None:
        text = self.ported(block.text)
        if block.file:
            (self.copy / block.file).write_text(text, encoding="utf-8")
            return
        script = self.copy / f"snippet_{block.line}.py"
        script.write_text(text, encoding="utf-8")
        venv_python = self.copy / ".venv" / "bin" / "python"
        python = str(venv_python) if venv_python.exists() else sys.executable
        done = subprocess.run(
            [python, script.name],
            cwd=self.copy,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=COMMAND_SECONDS,
        )
        assert done.returncode == 0, f"the python block at {block.where} failed:\n{done.stdout}{done.stderr}"

    def command(self, block: Block, command: str) -> None:
        url = URL_COMMENT.search(command)
        if url is None and "leave it running" not in command:
            path, log = self.log("command")
            with log:
                done = subprocess.run(
                    ["bash", "-c", command],
                    cwd=self.copy,
                    env=self.env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    timeout=COMMAND_SECONDS,
                )
            assert done.returncode == 0, (
                f"{command!r} ({block.where}) exited {done.returncode}:\n{tail(path)}"
            )
            return
        path, log = self.log("background")
        with log:
            process = subprocess.Popen(
                ["bash", "-c", command],
                cwd=self.copy,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stopped whole at the end
            )
        self.running.append((process, command, path))
        if url is not None:
            wait_for_answer(url.group("url"), process, command, path)
        else:
            port = re.search(r"--port[ =](\d+)", command)
            if port is not None:
                wait_for_port(int(port.group(1)), process, command, path)

    def stop(self) -> None:
        for process, _, _ in reversed(self.running):
            stop_group(process)


def tail(log: Path, lines: int = 60) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def wait_for_answer(url: str, process: subprocess.Popen[bytes], command: str, log: Path) -> None:
    """Ask url until it answers 200 (following redirects, and asking the final URL again)."""
    deadline = time.monotonic() + SERVER_SECONDS
    last = "no answer"
    while time.monotonic() < deadline:
        assert process.poll() is None, (
            f"{command!r} exited {process.returncode} before answering:\n{tail(log)}"
        )
        try:
            with urllib.request.urlopen(url, timeout=30) as answer:
                if answer.status == 200:
                    return
                url, last = answer.geturl(), f"{answer.status} from {answer.geturl()}"
        except urllib.error.HTTPError as error:
            if error.code not in (502, 503):
                raise AssertionError(f"{command!r}: {url} answered {error.code}:\n{tail(log)}") from error
            last = f"{error.code}"
        except OSError as error:  # not listening yet
            last = repr(error)
        time.sleep(0.25)  # polling a server that is starting: there is nothing to wait on
    raise AssertionError(f"{command!r}: {url} gave no 200 in {SERVER_SECONDS} s ({last}):\n{tail(log)}")


def wait_for_port(port: int, process: subprocess.Popen[bytes], command: str, log: Path) -> None:
    import socket

    deadline = time.monotonic() + SERVER_SECONDS
    while time.monotonic() < deadline:
        assert process.poll() is None, f"{command!r} exited {process.returncode}:\n{tail(log)}"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
            return
        except OSError:
            time.sleep(0.25)  # polling a server that is starting: there is nothing to wait on
    raise AssertionError(
        f"{command!r}: nothing listens on port {port} after {SERVER_SECONDS} s:\n{tail(log)}"
    )


def stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGINT to the command's process group (as Ctrl-C would), then SIGKILL if it lingers."""
    for sig, grace in ((signal.SIGINT, 30), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(grace)
            os.killpg(process.pid, signal.SIGKILL)  # what the command left behind in its group
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue
        return


@pytest.fixture
def page_run(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[Path], PageRun]]:
    runs: list[PageRun] = []

    def make(page: Path) -> PageRun:
        run = PageRun(page, fresh_copy(tmp_path / "clone"))
        runs.append(run)
        return run

    yield make
    for run in runs:
        run.stop()


@pytest.mark.docs
@pytest.mark.parametrize("page", runnable_pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_block_of_the_page_runs_as_written(page: Path, page_run: Callable[[Path], PageRun]) -> None:
    page_run(page).run()


# --- quick checks, in the README's test command ----------------------------------------------------


def test_every_block_is_run_or_says_why_not(report: Callable[[str], None]) -> None:
    for page in PAGES:
        page_blocks = blocks(page)
        for block in page_blocks:
            if block.not_run:
                report(f"not run: {block.where}: {block.not_run}")
        run_sh = [b for b in page_blocks if b.lang == "sh" and not b.not_run]
        if page.name != "README.md" and run_sh:
            assert run_sh[0].text.startswith(INSTALL), f"{run_sh[0].where}: a page's first command installs"
        if page.name == "README.md":
            assert run_sh and run_sh[0].text.startswith(INSTALL)
    known = {"python", "sh", "text", ""}
    odd = [f"{b.where} ({b.lang})" for page in PAGES for b in blocks(page) if b.lang not in known]
    assert odd == [], "blocks in a language the docs test does not know"


def test_the_readme_test_command_is_the_one_ci_runs() -> None:
    command = next(
        b for b in blocks(ROOT / "README.md") if "pytest" in b.text and b.lang == "sh"
    ).text.strip()
    assert command in (ROOT / ".ci" / "run").read_text().splitlines()
    contributing = [b.text.strip() for b in blocks(ROOT / "CONTRIBUTING.md")]
    assert command in contributing


def test_the_parser_reads_files_commands_and_reasons(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "text\n\n1. a step\n\n   ```python\n   # app.py\n   x = 1\n   ```\n\n"
        "<!-- not run: it would take an hour -->\n```sh\nnox\n```\n\n"
        "```sh\n.venv/bin/a --port 8000 \\\n  --b   # then open http://127.0.0.1:8000/x\n# a comment\n```\n"
        "```{toctree}\nx\n```\n"
    )
    first, second, third = blocks(page)
    assert (first.file, first.text) == ("app.py", "# app.py\nx = 1\n")
    assert second.not_run == "it would take an hour"
    assert commands(third.text) == [".venv/bin/a --port 8000    --b   # then open http://127.0.0.1:8000/x"]
    assert URL_COMMENT.search(commands(third.text)[0])
    run = PageRun.__new__(PageRun)
    run.ports = {}
    ported = run.ported("--port 8000 http://127.0.0.1:8000/ 6379 18000 3.8001")
    port = run.ports["8000"]
    assert ported == f"--port {port} http://127.0.0.1:{port}/ {run.ports['6379']} 18000 3.8001"


def public_names() -> list[str]:
    import safeplot.asgi
    import safeplot.celery
    import safeplot.django
    import safeplot.wsgi

    modules = [safeplot, safeplot.wsgi, safeplot.django, safeplot.asgi, safeplot.celery]
    return [f"{module.__name__}.{name}" for module in modules for name in module.__all__]


def test_the_api_reference_names_every_public_name() -> None:
    api = (ROOT / "docs" / "api.md").read_text()
    documented = set(re.findall(r"::\s*([\w.]+)", api))
    whole_modules = set(re.findall(r"automodule:: ([\w.]+)\n   :members:\n", api))
    missing = [
        name
        for name in public_names()
        if name not in documented
        and name.rpartition(".")[2] not in documented  # under py:currentmodule:: safeplot
        and name.rpartition(".")[0] not in whole_modules
    ]
    assert missing == []


@pytest.mark.docs
def test_the_built_reference_has_every_public_name() -> None:
    """After nox -s docs built the site: an entry (an anchor) for every public name."""
    html = (ROOT / "docs" / "_build" / "html" / "api.html").read_text()
    assert [name for name in public_names() if f'id="{name}"' not in html] == []
