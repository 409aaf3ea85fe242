"""Every code block of the README, CONTRIBUTING.md and the docs, run as a reader would run it.

The pages are run by ``nox -s docs`` (which CI runs), each in a fresh copy of
the repository (its tracked files, and new ones not ignored), block by block:

- a ``python`` block whose first line names a file (``# app.py``) is written
  to that file, for the commands after it; any other ``python`` block runs as
  a script, with the page's ``.venv`` once a command of the page has made one;
- each line of an ``sh`` block runs as written (lines ending in ``\\`` are
  joined), in order.  A line whose comment names ``http://127.0.0.1:PORT/...``
  is a server: nothing may listen on its port before it starts, it must
  answer that URL with 200 (following redirects; 202, 502, 503 and refused
  connections are asked again) and it runs until the page is done, then gets
  SIGINT.  A line whose comment says ``leave it running`` must still run
  then.  Every other line must exit 0; ``cd``, ``export`` and ``source``
  lines are refused (each line runs in a shell of its own);
- ports (after ``127.0.0.1:``, ``localhost:``, ``--port``, ``--server.port``
  and ``port=``) are replaced by free ports, the same number by the same
  port throughout a page, no two numbers by one port;
- ``<!-- not run: REASON -->`` right before a block skips it; the reasons are
  listed in the run's summary.

Every command runs in a process group of its own, killed when the test's
process dies.  A page's copy is deleted once the page passed.

Blocks in other languages (``text``, none) are output or layouts, not code.
The quick checks at the end run in the README's test command.
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import signal
import socket
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
from markdown_it import MarkdownIt

from tests.servers import free_port

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / name for name in ("README.md", "CONTRIBUTING.md", "CHANGELOG.md")]
PAGES += sorted((ROOT / "docs").rglob("*.md"))
PAGES = [page for page in PAGES if "_build" not in page.parts]
RUN = {"python", "sh"}
MARKDOWN = MarkdownIt("commonmark")
NOT_RUN = re.compile(r"^\s*<!--\s*not run:\s*(?P<reason>.+?)\s*-->\s*$")
FILE_LINE = re.compile(r"^#\s*(?P<name>[\w./-]+\.py)\s*$")
URL_COMMENT = re.compile(r"#.*?(?P<url>http://(?:127\.0\.0\.1|localhost):(?P<port>\d+)(?:/\S*)?)")
PORT = re.compile(
    r"(?P<before>(?:127\.0\.0\.1:|localhost:|--port[ =]|--server\.port[ =]|port=))(?P<port>\d{2,5})(?!\w)"
)
DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # no proxy for 127.0.0.1
SHELL_STATE = re.compile(r"^(cd|export|source|\.)\s")
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


def parse(page: Path) -> tuple[list[Block], list[str]]:
    """The fenced blocks of a Markdown page, in order (MyST directives, ```{...}, left out), and what is
    wrong with the page's fences: a ``not run`` comment attached to no block, words after a fence's
    language, ``~~~`` or indented code blocks (which this test would not read as commands)."""
    found: list[Block] = []
    problems: list[str] = []
    where = page.relative_to(ROOT) if page.is_relative_to(ROOT) else page
    reason: tuple[str, int] | None = None  # a not-run comment, and the line after it
    for token in MARKDOWN.parse(page.read_text(encoding="utf-8")):
        start, end = token.map or (0, 0)
        if token.type == "html_block" and NOT_RUN.match(token.content.strip()):
            if reason is not None:
                problems.append(f"{where}:{reason[1]}: a 'not run' comment attached to no block")
            match = NOT_RUN.match(token.content.strip())
            assert match is not None
            reason = (match.group("reason"), end)
            continue
        if token.type == "code_block":
            problems.append(f"{where}:{start + 1}: an indented code block (write a fence)")
        if token.type != "fence":
            if token.block and token.nesting >= 0 and reason is not None and token.type != "paragraph_close":
                problems.append(f"{where}:{reason[1]}: a 'not run' comment attached to no block")
                reason = None
            continue
        lang, _, rest = token.info.strip().partition(" ")
        if token.markup.startswith("~"):
            problems.append(f"{where}:{start + 1}: a ~~~ fence (write ```)")
        if rest and not lang.startswith("{"):
            problems.append(f"{where}:{start + 1}: words after the fence's language: {token.info!r}")
        attached = reason[0] if reason is not None and reason[1] == start else None
        if reason is not None and attached is None:
            problems.append(f"{where}:{reason[1]}: a 'not run' comment attached to no block")
        reason = None
        if not lang.startswith("{"):
            found.append(Block(page, start + 1, lang, token.content, attached))
    if reason is not None:
        problems.append(f"{where}:{reason[1]}: a 'not run' comment attached to no block")
    return found, problems


def blocks(page: Path) -> list[Block]:
    return parse(page)[0]


def commands(text: str) -> list[str]:
    """The commands of an sh block: one a line, continuation lines joined, comment lines left out."""
    joined: list[str] = []
    pending = ""
    for line in text.splitlines():
        if not pending and line.lstrip().startswith("#"):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        command = (pending + line).strip()
        pending = ""
        if command:
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
    dropped = (
        "SAFEPLOT_",
        "PYTEST_",
        "VIRTUAL_ENV",
        "DJANGO_SETTINGS_MODULE",
        "PYTHONPATH",
        "PYTHONUNBUFFERED",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
    ours = {str(Path(sys.prefix) / "bin"), os.path.join(os.environ.get("VIRTUAL_ENV", sys.prefix), "bin")}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", os.defpath).split(os.pathsep) if p not in ours)
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def in_a_group_of_its_own() -> None:
    """In the child before it runs the command: Ctrl-C's default action back (a test run started in
    the background ignores SIGINT, and children inherit that), and SIGKILL when this test's process
    dies, so that nothing a page started outlives the test run (Linux's PR_SET_PDEATHSIG)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG


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
        self.done = False

    def ported(self, text: str) -> str:
        def free(match: re.Match[str]) -> str:
            number = match.group("port")
            if number not in self.ports:
                port = free_port()
                while str(port) in self.ports.values():
                    port = free_port()
                self.ports[number] = str(port)
            return match.group("before") + self.ports[number]

        return PORT.sub(free, text)

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
        self.done = True

    def start(self, argv: list[str], log: IO[bytes]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            argv,
            cwd=self.copy,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped whole
            preexec_fn=in_a_group_of_its_own,
        )

    def finish(self, argv: list[str], what: str) -> None:
        """Run argv to its end (at most COMMAND_SECONDS); it must exit 0."""
        path, log = self.log("command")
        with log:
            process = self.start(argv, log)
        try:
            code = process.wait(COMMAND_SECONDS)
        except subprocess.TimeoutExpired:
            stop_group(process)
            raise AssertionError(f"{what} ran past {COMMAND_SECONDS} s:\n{tail(path)}") from None
        assert code == 0, f"{what} exited {code}:\n{tail(path)}"

    def python(self, block: Block) -> None:
        text = self.ported(block.text)
        if block.file:
            (self.copy / block.file).write_text(text, encoding="utf-8")
            return
        script = self.copy / f"snippet_{block.line}.py"
        script.write_text(text, encoding="utf-8")
        python = self.copy / ".venv" / "bin" / "python"
        assert python.exists(), f"the python block at {block.where} comes before the page's install line"
        self.finish([str(python), script.name], f"the python block at {block.where}")

    def command(self, block: Block, command: str) -> None:
        url = URL_COMMENT.search(command)
        if url is None and "leave it running" not in command:
            self.finish(["bash", "-c", command], f"{command!r} ({block.where})")
            return
        if url is not None:
            assert_nothing_listens(int(url.group("port")), command)
        path, log = self.log("background")
        with log:
            process = self.start(["bash", "-c", command], log)
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


def assert_nothing_listens(port: int, command: str) -> None:
    with socket.socket() as probe:
        taken = probe.connect_ex(("127.0.0.1", port)) == 0
    assert not taken, f"{command!r}: something listens on port {port} already"


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
            with DIRECT.open(url, timeout=30) as answer:
                if answer.status == 200:
                    return
                url, last = answer.geturl(), f"{answer.status} from {answer.geturl()}"
        except urllib.error.HTTPError as error:
            if error.code not in (502, 503):
                body = error.read().decode(errors="replace")[:2000]
                raise AssertionError(
                    f"{command!r}: {url} answered {error.code}: {body}\n{tail(log)}"
                ) from error
            last = f"{error.code}"
        except OSError as error:  # not listening yet
            last = repr(error)
        time.sleep(0.25)  # polling a server that is starting: there is nothing to wait on
    raise AssertionError(f"{command!r}: {url} gave no 200 in {SERVER_SECONDS} s ({last}):\n{tail(log)}")


def wait_for_port(port: int, process: subprocess.Popen[bytes], command: str, log: Path) -> None:
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
        if run.done:
            shutil.rmtree(run.copy, ignore_errors=True)  # a venv a page: hundreds of MB


@pytest.mark.docs
@pytest.mark.parametrize("page", runnable_pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_block_of_the_page_runs_as_written(page: Path, page_run: Callable[[Path], PageRun]) -> None:
    page_run(page).run()


# --- quick checks, in the README's test command ----------------------------------------------------


def page_problems(page: Path) -> list[str]:
    """What in a page this test could not run as a reader would."""
    page_blocks, problems = parse(page)
    installed = False
    for block in page_blocks:
        if block.not_run:
            continue
        if block.lang not in ("python", "sh", "text", ""):
            problems.append(f"{block.where}: a block in {block.lang!r}, a language this test does not run")
        if block.lang == "sh":
            lines = commands(block.text)
            if not installed and not (lines and lines[0].startswith(INSTALL)):
                problems.append(f"{block.where}: the page's first command is not its install line")
            installed = True
            for line in lines:
                if SHELL_STATE.match(line):
                    problems.append(f"{block.where}: {line!r} would not last past its own line")
                if "open http" in line and not URL_COMMENT.search(line):
                    problems.append(f"{block.where}: {line!r} names a URL this test does not read")
        if block.lang == "python" and not block.file and not installed:
            problems.append(f"{block.where}: a python block before the page's install line")
    return problems


def test_every_block_is_run_or_says_why_not(report: Callable[[str], None]) -> None:
    for page in PAGES:
        for block in blocks(page):
            if block.not_run:
                report(f"not run: {block.where}: {block.not_run}")
    assert [problem for page in PAGES for problem in page_problems(page)] == []


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
        "```sh\n.venv/bin/a --port 8000 \\\n  --b   # then open http://127.0.0.1:8000/x\n"
        "# a comment \\\n.venv/bin/c\n```\n"
        "```{toctree}\nx\n```\n"
    )
    first, second, third = blocks(page)
    assert (first.file, first.text) == ("app.py", "# app.py\nx = 1\n")
    assert second.not_run == "it would take an hour"
    assert commands(third.text) == [
        ".venv/bin/a --port 8000    --b   # then open http://127.0.0.1:8000/x",
        ".venv/bin/c",
    ]
    assert URL_COMMENT.search(commands(third.text)[0])
    assert parse(page)[1] == []


def test_the_parser_finds_what_it_could_not_run(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "```sh title=x\nfalse\n```\n\n~~~sh\nfalse\n~~~\n\n"
        "<!-- not run: far from its block -->\n\n```sh\nfalse\n```\n\n"
        "    indented code\n\n<!-- not run: before text -->\ntext\n"
    )
    problems = parse(page)[1]
    assert len(problems) == 5, problems
    for words in ("words after", "~~~", "attached to no block", "indented code block"):
        assert any(words in problem for problem in problems), words
    lines = tmp_path / "lines.md"
    lines.write_text(
        "```sh\ncd docs\n.venv/bin/x   # then open http://example.org/\n```\n\n```python\nprint(1)\n```\n"
    )
    problems = page_problems(lines)
    assert len(problems) == 3, problems  # not cd-ed, a URL it cannot read, no install line first


def test_ports_are_replaced_only_where_a_port_is_written() -> None:
    run = PageRun.__new__(PageRun)
    run.ports = {}
    text = (
        "--port 8000 http://127.0.0.1:8000/ redis://127.0.0.1:6379/0 port=8001 x_8000 a8000b 2023-8000 3.8001"
    )
    ported = run.ported(text)
    p8000, p6379, p8001 = run.ports["8000"], run.ports["6379"], run.ports["8001"]
    assert len({p8000, p6379, p8001}) == 3
    expected = f"--port {p8000} http://127.0.0.1:{p8000}/ redis://127.0.0.1:{p6379}/0 port={p8001}"
    assert ported == expected + " x_8000 a8000b 2023-8000 3.8001"


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


def test_the_readme_is_a_front_page_whose_links_lead_somewhere() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 200
    for host, line in [
        ("Flask", "from safeplot.wsgi import"),
        ("Django", "safeplot.django.SafeplotMiddleware"),
    ]:
        assert f"**{host}" in readme and line in readme, host
    for host, line in [("FastAPI", "from safeplot.asgi import"), ("Celery", "safeplot.celery:SafeplotTask")]:
        assert f"**{host}" in readme and line in readme, host
    for page in [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").glob("**/*.md"))]:
        if "_build" in page.parts:
            continue
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", page.read_text(encoding="utf-8")):
            assert (page.parent / target).exists(), f"{page.relative_to(ROOT)} links to a missing {target}"


def test_read_the_docs_builds_the_site_as_nox_does() -> None:
    config = (ROOT / ".readthedocs.yaml").read_text()
    assert "configuration: docs/conf.py" in config and "fail_on_warning: true" in config
    assert re.search(r"extra_requirements:\s*\n\s*- docs", config)
