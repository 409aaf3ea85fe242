"""Put first on PYTHONPATH by ``safeplot-run``: every Python process that starts imports safeplot first.

Any ``sitecustomize`` this one hides (one further down the path) runs too.
"""

import importlib.machinery
import importlib.util
import os
import sys


def _run_hidden_sitecustomize() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    rest = [entry for entry in sys.path if os.path.abspath(entry or ".") != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is not None and spec.loader is not None:
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)


try:
    try:
        from safeplot._launcher import bootstrap
    except ImportError as error:  # an interpreter without safeplot (another venv): run as it would
        sys.stderr.write(f"safeplot-run: safeplot is not importable in {sys.executable}: {error}\n")
    else:
        bootstrap()
finally:
    _run_hidden_sitecustomize()
