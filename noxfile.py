"""The support matrix: the whole test suite on each Python × matplotlib × werkzeug × Django corner.

    nox                                  # every session: the full matrix
    nox -s "tests(oldest)" "tests(newest)"   # the two corners CI runs
    nox -s soak                          # the load tests with 5x the requests and the soak-marked ones (CI)
    nox -s hosts                         # the tests of hosts beyond the test extra: Dash (CI)
    nox -s docs                          # the docs site (warnings are errors) and every block of it run (CI)
    nox -s "tests(free-threaded)"        # on a free-threaded CPython 3.13 (.ci/build-python 3.13t)
    nox -l                               # list the sessions

Interpreters are looked up on PATH, with pyenv's installed versions put first;
a session whose interpreter is absent is skipped with a message (an error
where the CI variable is set, for the sessions CI runs).  The free-threaded
interpreter is the one `.ci/build-python 3.13t` installs (SAFEPLOT_PYTHON_FT
names another); CI does not build it.
"""

from __future__ import annotations

import configparser
import os
import re
import sys
from pathlib import Path

import nox

nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = False

PYENV_VERSIONS = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
READER_PATH = os.environ["PATH"]  # a reader's PATH, before the interpreters below go first
BUILT = Path.home() / ".local"  # where .ci/build-python installs: ~/.local/python3.14/bin/python3.14, ...
for bin_dir in [*sorted(PYENV_VERSIONS.glob("3.*/bin")), *sorted(BUILT.glob("python3.*/bin"))]:
    os.environ["PATH"] = f"{bin_dir}{os.pathsep}{os.environ['PATH']}"

# (id, python, requirements pinned on top of '.[test]')
MATRIX: list[tuple[str, str, list[str]]] = [
    (
        "oldest",
        "3.9",
        [
            *("matplotlib==3.5.*", "werkzeug==2.2.*", "flask==2.2.*", "django==4.2.*", "numpy<2"),
            *("pebble==5.0.*", "celery[redis]==5.3.*"),  # the declared minimums of RenderPool's and Celery's
        ],
    ),
    ("py3.10-mpl3.6", "3.10", ["matplotlib==3.6.*", "numpy<2"]),
    ("py3.11-mpl3.7", "3.11", ["matplotlib==3.7.*", "numpy<2"]),
    ("py3.11-mpl3.8", "3.11", ["matplotlib==3.8.*"]),
    ("py3.12-mpl3.9", "3.12", ["matplotlib==3.9.*"]),
    ("newest", "3.13", ["--upgrade", "matplotlib", "werkzeug", "flask", "django"]),
    # The newest releases with cp313t wheels; later ones ship cp314t wheels only.
    (
        "free-threaded",
        os.environ.get("SAFEPLOT_PYTHON_FT", str(Path.home() / ".local/python3.13t/bin/python3.13t")),
        [
            "--only-binary=:all:",
            "matplotlib==3.11.1",
            "numpy==2.4.6",
            "pillow==12.2.0",
            "contourpy==1.3.3",
            "kiwisolver==1.5.0",
            "markupsafe==3.0.3",
        ],
    ),
]


# What a row leaves out of the test extra: gevent (and eventlet, tested with it) ship no
# free-threaded wheels, so their tests are skipped there.
WITHOUT = {"free-threaded": {"gevent", "eventlet"}}


def test_extra(without: set[str]) -> list[str]:
    """The requirements of setup.cfg's test extra, less the distributions named in ``without``."""
    config = configparser.ConfigParser()
    config.read(Path(__file__).parent / "setup.cfg")
    requirements = config["options.extras_require"]["test"].split()
    return [r for r in requirements if re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0] not in without]


VERSIONS = (
    "import sys, importlib.metadata as m; print(sys.version.split()[0], "
    "'GIL enabled' if getattr(sys, '_is_gil_enabled', lambda: True)() else 'GIL disabled', "
    "*(f'{p} {m.version(p)}' for p in ('matplotlib', 'werkzeug', 'django', 'numpy')))"
)


@nox.session
@nox.parametrize(
    ("python", "requirements", "without"),
    [(python, requirements, WITHOUT.get(name, set())) for name, python, requirements in MATRIX],
    ids=[name for name, _, _ in MATRIX],
)
def tests(session: nox.Session, requirements: list[str], without: set[str]) -> None:
    """The whole test suite against one corner of the matrix."""
    extra = test_extra(without) if without else []
    session.install("-e", "." if without else ".[test]", *extra, *requirements)
    session.run("python", "-c", VERSIONS)
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session(python=False)
def soak(session: nox.Session) -> None:
    """The load, concurrency and memory tests with 5x their requests, and the soak-marked tests."""
    # sys.executable: the interpreter nox runs in (.venv's), not whatever "python" is on PATH
    session.run(
        sys.executable,
        "-m",
        "pytest",
        "-m",
        "(slow or soak) and not hosts",
        *session.posargs,
        env={"SAFEPLOT_SOAK": "5"},
    )


@nox.session(python=False)
def hosts(session: nox.Session) -> None:
    """The tests of hosts beyond the test extra (a Dash app), with those hosts installed."""
    session.run(sys.executable, "-m", "pip", "install", "-q", "dash>=3", external=True)
    session.run(sys.executable, "-m", "pytest", "-m", "hosts", *session.posargs)


@nox.session(python=False)
def docs(session: nox.Session) -> None:
    """The documentation site (warnings are errors), then every block of the README and the docs, run."""
    session.run(sys.executable, "-m", "pip", "install", "-q", "-e", ".[docs]", external=True)
    build = ["-W", "--keep-going", "-E", "-b", "html", "docs", "docs/_build/html"]
    session.run(sys.executable, "-m", "sphinx", *build, external=True)
    # The pages' commands run with the PATH nox was started with: their python3 is a reader's.
    session.run(
        sys.executable,
        "-m",
        "pytest",
        "-m",
        "docs",
        *session.posargs,
        external=True,
        env={"PATH": READER_PATH},
    )


@nox.session(python=False)
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check on the whole repository."""
    session.run(sys.executable, "-m", "ruff", "check", ".", external=True)
    session.run(sys.executable, "-m", "ruff", "format", "--check", ".", external=True)


@nox.session(python=False)
def typing(session: nox.Session) -> None:
    """mypy --strict on the package (settings in pyproject.toml)."""
    session.run(sys.executable, "-m", "mypy", external=True)
