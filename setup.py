"""Build step: compile the hot-path modules with mypyc (events/native.py says which, and why).

Everything else about the package is in pyproject.toml. ``RECSTREAM_PURE_PYTHON=1`` at
install time skips the compilation: the same behaviour from the Python source, slower.
"""

import os
import sys

from setuptools import setup

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from events.native import COMPILED, PURE_ENV  # noqa: E402

ext_modules = []
if os.environ.get(PURE_ENV) != "1":
    from mypyc.build import mypycify

    # numpy and orjson are not in the build environment: their types are Any here.
    ext_modules = mypycify(["--ignore-missing-imports", *(m.replace(".", "/") + ".py" for m in COMPILED)])

setup(ext_modules=ext_modules)
