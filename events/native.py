"""Which modules run compiled, and the switch back to their Python source.

The per-event hot path (the event validator, the tile tables, both feature stages and the
Kafka source's per-message loop) is compiled with mypyc when the project is installed
(``setup.py``): the same typed source, built into C extension modules that CPython loads in
preference to the ``.py`` files next to them. It makes the features flow about 40% faster,
Kafka to Kafka (2026-12-02). The Python source stays the reference: the test suite passes
either way, and ``tests/contract/test_native_build.py`` checks that both write the same bytes.

The Python source is used instead of the compiled modules when

* ``RECSTREAM_PURE_PYTHON=1`` is set (to debug or profile line by line, or to compare), or
* a source file differs from the one its compiled module was built from (setup.py records
  their sha256 in ``events/_native_build.py``), i.e. it was edited after the build: the
  compiled module would silently run the old code, so none is used (with one warning) until
  ``make venv`` (or ``pip install -e .``) rebuilds them. The compiled modules call each
  other directly, so it is all of them or none.

``RECSTREAM_PURE_PYTHON=1`` at install time skips the compilation altogether.

``COMPILED`` below is the only list of compiled modules: setup.py compiles it, and the
Makefile asks for it (``python -m events.hotpath --sources``) to rebuild when one changes.
``python -m events.hotpath`` says which build runs and why; docs/compiled-hot-path.md
explains the mechanism for users.

>>> "features.tiles" in COMPILED
True
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Final

#: The modules setup.py compiles (dotted names; each is ``<package>/<name>.py`` in this repository).
COMPILED: Final = ("events.schema", "features.tiles", "features.arrival_table", "features.item_table",
                   "features.window_table", "features.partition_stage", "features.item_stage",
                   "dataflows.kafka_batches")
PURE_ENV: Final = "RECSTREAM_PURE_PYTHON"
ROOT: Final = Path(__file__).resolve().parent.parent


def source_path(module: str, root: Path = ROOT) -> Path:
    """The ``.py`` file of a module of this repository."""
    return root.joinpath(*module.split(".")).with_suffix(".py")


def compiled_path(module: str, root: Path = ROOT) -> Path | None:
    """The built extension module next to the source, or None when there is none."""
    source = source_path(module, root)
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        candidate = source.with_name(source.stem + suffix)
        if candidate.exists():
            return candidate
    return None


def source_digest(module: str, root: Path = ROOT) -> str:
    """sha256 of a module's source file."""
    return hashlib.sha256(source_path(module, root).read_bytes()).hexdigest()


def recorded_digests() -> dict[str, str]:
    """The source digests setup.py recorded when it compiled (``events/_native_build.py``), or {}."""
    try:
        record = importlib.import_module("events._native_build")
    except ImportError:
        return {}
    return dict(record.SOURCES)


def stale_modules(root: Path = ROOT, recorded: dict[str, str] | None = None) -> list[str]:
    """Compiled modules whose source is not the one they were built from.

    Content, not file times: an installed wheel writes each ``.py`` after its extension
    module, and a checkout touches files it does not change.
    """
    recorded = recorded_digests() if recorded is None else recorded
    return [m for m in COMPILED if compiled_path(m, root) is not None and recorded.get(m) != source_digest(m, root)]


class _SourceFinder(importlib.abc.MetaPathFinder):
    """Finds the compiled modules' ``.py`` sources, ahead of the extension modules."""

    def __init__(self) -> None:
        self.reason: str | None = None  # why install() chose the Python source, if it did

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
                  ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in COMPILED:
            return None
        return importlib.util.spec_from_file_location(fullname, source_path(fullname))


_FINDER = _SourceFinder()


def install() -> None:
    """Decide, once per process and before any compiled module is imported, what runs."""
    if _FINDER in sys.meta_path:
        return
    if os.environ.get(PURE_ENV) == "1":
        _FINDER.reason = f"{PURE_ENV}=1"
    elif stale := stale_modules():
        _FINDER.reason = "its source changed after the build (`make venv` rebuilds it)"
        names = ", ".join(str(source_path(m).relative_to(ROOT)) for m in stale)
        warnings.warn(f"{names} changed after the compiled build: running the Python source of "
                      f"{', '.join(COMPILED)} (slower) until `make venv` rebuilds them", RuntimeWarning, stacklevel=2)
    else:
        return
    sys.meta_path.insert(0, _FINDER)


def why_python() -> str | None:
    """Why this process runs the hot path from the Python source, or None when it is compiled."""
    if build() == "compiled":
        return None
    return _FINDER.reason or "it was not compiled at install (no C compiler, or RECSTREAM_PURE_PYTHON=1 then)"


def build() -> str:
    """``"compiled"`` when every hot-path module is an extension module, else ``"python"``.

    Imports the modules (the answer is about what this process runs).
    """
    files = [importlib.import_module(m).__file__ or "" for m in COMPILED]
    compiled = all(f.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)) for f in files)
    return "compiled" if compiled else "python"

