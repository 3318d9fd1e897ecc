"""One mechanism from a frozen config dataclass to a command line.

A component declares its settings once, as a frozen dataclass whose fields are made with
:func:`option` (default and help text in one place); :func:`config_parser` turns it into an
argparse parser with one flag per field (``batch_size`` -> ``--batch-size``), and
:func:`run_cli` parses, builds the config and runs, reporting a bad value in one line with
exit status 2. ``__post_init__`` checks values with :func:`require_field`, so a config built
from Python is checked exactly like one built from flags.

>>> from dataclasses import dataclass
>>> @dataclass(frozen=True)
... class Demo:
...     batch_size: int = option(64, "rows per step")
...     def __post_init__(self):
...         require_field(self.batch_size >= 1, "Demo", "batch_size", ">= 1", self.batch_size)
>>> Demo(**vars(config_parser(Demo, "demo", "A demo.").parse_args(["--batch-size", "8"])))
Demo(batch_size=8)
>>> Demo(batch_size=0)
Traceback (most recent call last):
ValueError: Demo.batch_size (--batch-size) must be >= 1, got 0
"""

from __future__ import annotations

import argparse
import sys
import typing
from collections.abc import Callable
from dataclasses import field, fields
from typing import Any, Literal, NoReturn


def require_field(ok: bool, cls: str, name: str, requirement: str, value: object) -> None:
    """Raise ``ValueError("TrainConfig.lr (--lr) must be ..., got ...")`` unless ``ok``."""
    if not ok:
        flag = "--" + name.replace("_", "-")
        msg = f"{cls}.{name} ({flag}) must be {requirement}, got {value!r}"
        raise ValueError(msg)


def option(default: Any, help_: str) -> Any:
    """A config field whose help text the CLI shows (one place for the meaning and the unit)."""
    return field(default=default, metadata={"help": help_})


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad flag in one line (``prog: error: ...``) and exits 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def config_parser(cls: type, prog: str, description: str, given_only: bool = False) -> OneLineParser:
    """One flag per field of a config dataclass (``batch_size`` -> ``--batch-size``).

    The help text comes from the field's ``metadata["help"]``; fields without one (deployment
    settings, derived values) are not flags. Tuples take several values, ``Literal`` fields
    become choices, ``X | None`` fields take an X, ``bool`` fields are switches (``--flag`` /
    ``--no-flag``). With ``given_only`` the parsed namespace holds only the flags given on
    the command line, for configs that fill the rest from elsewhere (the environment).
    """
    hints = typing.get_type_hints(cls)
    parser = OneLineParser(prog=prog, description=description,
                           argument_default=argparse.SUPPRESS if given_only else None)
    for f in fields(cls):
        if "help" not in f.metadata:
            continue
        hint, default = hints[f.name], f.default
        shown = "" if default is None else f" (default: {default})"
        options: dict[str, Any] = {"help": f"{f.metadata['help']}{shown}"}
        if not given_only:
            options["default"] = default
        args = typing.get_args(hint)
        if hint is bool:
            options["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(hint) is tuple:
            options |= {"type": args[0], "nargs": "+"}
            if not given_only:
                options["default"] = list(default) if isinstance(default, tuple) else default
        elif typing.get_origin(hint) is Literal:
            options["choices"] = args
        else:
            options["type"] = next(a for a in args if a is not type(None)) if args else hint
        parser.add_argument("--" + f.name.replace("_", "-"), **options)
    return parser


def run_cli(parser: OneLineParser, argv: list[str] | None, make: Callable[..., Any], run: Callable[[Any], object],
            errors: tuple[type[Exception], ...]) -> int:
    """Parse flags, build the config (its ValueError is a usage error), run; known errors print one line and exit 2."""
    args = parser.parse_args(argv)
    try:
        cfg = make(**vars(args))
    except ValueError as e:
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        return 2
    try:
        run(cfg)
    except errors as e:
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        return 2
    return 0
