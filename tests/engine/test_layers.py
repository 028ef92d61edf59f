"""The worker and the protocol load without the database (or, for the protocol, the model).

`make lint` checks the same rules statically with import-linter; this test imports the
modules for real, so an import hidden from static analysis (``importlib``, ``__import__``)
is caught too.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

# Runs in a fresh interpreter: this test process has long since imported everything.
IMPORT_EVERY_MODULE = """
import importlib, json, pkgutil, sys

package = importlib.import_module({package!r})
imported = [package.__name__]
for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
    importlib.import_module(info.name)
    imported.append(info.name)
print(json.dumps({{"imported": imported, "loaded": sorted(sys.modules)}}))
"""

DATABASE = ("sqlalchemy", "storage", "alembic")


def import_every_module(package: str) -> tuple[list[str], list[str]]:
    """Import PACKAGE and all its submodules in a fresh interpreter; return (walked, loaded)."""
    completed = subprocess.run(
        [sys.executable, "-c", IMPORT_EVERY_MODULE.format(package=package)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    return report["imported"], report["loaded"]


def offenders(loaded: list[str], forbidden: tuple[str, ...]) -> list[str]:
    """Return the forbidden packages of which any module was loaded."""
    return sorted(f for f in forbidden if any(m == f or m.startswith(f + ".") for m in loaded))


@pytest.mark.parametrize(
    ("package", "known_module", "forbidden"),
    [
        ("engine.worker", "engine.worker.model.loading", DATABASE),
        ("engine.protocol", "engine.protocol.sampling", (*DATABASE, "torch")),
    ],
)
def test_package_loads_without_forbidden_modules(
    package: str, known_module: str, forbidden: tuple[str, ...]
) -> None:
    imported, loaded = import_every_module(package)
    # Guards against a walk that silently imports nothing and so proves nothing.
    assert known_module in imported
    assert offenders(loaded, forbidden) == []
