"""Build step: compile the hot-path modules with mypyc (events/native.py says which, and why).

Everything else about the package is in pyproject.toml. The compilation needs a C compiler
and the Python headers; without them, or with ``RECSTREAM_PURE_PYTHON=1`` at install time,
the package installs as plain Python: the same behaviour from the same source, slower.
"""

import os
import shutil
import sys
import sysconfig
from pathlib import Path

from setuptools import setup
from setuptools.command.build_ext import build_ext

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from events.native import COMPILED, PURE_ENV, source_digest

RECORD = Path("events/_native_build.py")


def missing_build_tools() -> str | None:
    """What the compilation lacks on this machine, or None."""
    compiler = (os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(compiler) is None:
        return f"no C compiler ({compiler!r} is not on PATH)"
    if not (Path(sysconfig.get_paths()["include"]) / "Python.h").exists():
        return f"no Python headers (Python.h is not in {sysconfig.get_paths()['include']})"
    return None


ext_modules = []
if os.environ.get(PURE_ENV) == "1":
    print(f"recstream: {PURE_ENV}=1: installing the hot path as plain Python", file=sys.stderr)
elif (missing := missing_build_tools()) is not None:
    print(f"recstream: {missing}: installing the hot path as plain Python (slower; see events/native.py)",
          file=sys.stderr)
else:
    from mypyc.build import mypycify

    # What is compiled, by content: events/native.py runs the source of any module that differs.
    # The record is removed first and written only once the sources type-check, and removed
    # again if the C build fails: extension modules left from an earlier build must never be
    # vouched for by the record of a build that did not happen (they would run as current).
    RECORD.unlink(missing_ok=True)
    digests = "".join(f"    {m!r}: {source_digest(m)!r},\n" for m in COMPILED)
    # numpy and orjson are not in the build environment: their types are Any here, so an ignore
    # that `make lint` needs (with their stubs) is unused here.
    ext_modules = mypycify(["--ignore-missing-imports", "--no-warn-unused-ignores",
                            *(m.replace(".", "/") + ".py" for m in COMPILED)])
    RECORD.write_text(
        f'"""Written by setup.py: the sha256 of each source it compiled (see events/native.py)."""\n\n'
        f"SOURCES = {{\n{digests}}}\n")


class BuildExt(build_ext):
    """setuptools' build_ext, removing the build record when the C build fails."""

    def run(self) -> None:
        try:
            super().run()
        except BaseException:
            RECORD.unlink(missing_ok=True)
            raise


setup(ext_modules=ext_modules, cmdclass={"build_ext": BuildExt})
