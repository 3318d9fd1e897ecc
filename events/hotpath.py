"""``python -m events.hotpath``: does the hot path run compiled (mypyc) or as Python source here, and why.

``--sources`` prints the compiled modules' source files on one line (the Makefile rebuilds
the install when one of them changes). The mechanism is in :mod:`events.native`.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from events import native


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m events.hotpath",
                                     description="Say whether the hot path runs compiled (mypyc) or as Python source, and why.")
    parser.add_argument("--sources", action="store_true", help="print the compiled modules' source files on one line")
    args = parser.parse_args(argv)
    if args.sources:
        print(" ".join(str(native.source_path(m).relative_to(native.ROOT)) for m in native.COMPILED))
        return 0
    kind, reason = native.build(), native.why_python()
    print(f"hot path: {kind}" + (f" ({reason})" if reason else ""))
    for module in native.COMPILED:
        print(f"  {module}: {importlib.import_module(module).__file__}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
