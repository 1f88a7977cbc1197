"""Load a script of ``benchmarks/`` as a module, so tests can call its functions.

``benchmarks/`` is not a package (its scripts run as ``python benchmarks/<name>.py``), so
tests import a script by path.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def load_benchmark(name: str) -> ModuleType:
    """``benchmarks/<name>.py`` as a fresh module named ``name``.

    >>> load_benchmark("envtune_learning").LABELS["envtune"]
    'Environment Tuning'
    """
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module
