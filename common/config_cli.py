"""One mechanism from a frozen config dataclass to a command line.

A component declares its settings once, as a frozen dataclass whose fields are made with
:func:`option` (default and help text in one place); :func:`config_parser` turns it into an
argparse parser with one flag per field (``batch_size`` -> ``--batch-size``), and
:func:`run_cli` parses, builds the config and runs, reporting a bad value in one line with
exit status 2. ``__post_init__`` checks values with :func:`require_field`, so a config built
from Python is checked exactly like one built from flags. A command made of several configs
(the producer's run, its generator model, an experiment) adds each one's flags to one parser
with :func:`add_config_flags` and a destination prefix, and takes them back out with
:func:`pop_config_args`.

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
from dataclasses import MISSING, Field, field, fields
from datetime import datetime
from typing import Any, Literal, NoReturn


def require_field(ok: bool, cls: str, name: str, requirement: str, value: object) -> None:
    """Raise ``ValueError("TrainConfig.lr (--lr) must be ..., got ...")`` unless ``ok``."""
    if not ok:
        flag = "--" + name.replace("_", "-")
        msg = f"{cls}.{name} ({flag}) must be {requirement}, got {value!r}"
        raise ValueError(msg)


def option(default: Any, help_: str, *, flag: str | None = None, parse: Callable[[str], Any] | None = None,
           metavar: str | None = None, group: str | None = None, const: Any = MISSING) -> Any:
    """A config field whose help text the CLI shows (one place for the meaning and the unit).

    The keywords shape its flag where the defaults do not fit: ``flag`` its name (default
    ``--field-name``), ``parse`` a function from the text to the value (its ``ValueError``
    becomes a one-line usage error naming the flag), ``metavar`` the placeholder in ``--help``,
    ``group`` the title of the ``--help`` section it is listed in, ``const`` a value the flag
    sets without taking one (``--backfill`` sets ``mode="backfill"``). ``default`` may be
    ``dataclasses.MISSING`` for a required field.
    """
    cli = {"help": help_, "flag": flag, "parse": parse, "metavar": metavar, "group": group, "const": const}
    return field(default=default, metadata=cli)


def flag_of(f: Field[Any]) -> str:
    """The flag of a config field: its ``flag`` option, else ``--`` and the name with dashes."""
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad flag in one line (``prog: error: ...``) and exits 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def config_parser(cls: type, prog: str, description: str, given_only: bool = False,
                  epilog: str | None = None) -> OneLineParser:
    """One flag per field of a config dataclass (``batch_size`` -> ``--batch-size``).

    The help text comes from the field's ``metadata["help"]``; fields without one (deployment
    settings, derived values, nested configs) are not flags. Tuples take several values,
    ``Literal`` fields become choices, ``X | None`` fields take an X, ``bool`` fields are
    switches (``--flag`` / ``--no-flag``); :func:`option`'s keywords override each. With
    ``given_only`` the parsed namespace holds only the flags given on the command line, for
    configs that fill the rest from elsewhere (the environment).
    """
    parser = OneLineParser(prog=prog, description=description, epilog=epilog,
                           argument_default=argparse.SUPPRESS if given_only else None)
    add_config_flags(parser, cls, given_only=given_only)
    return parser


def add_config_flags(parser: argparse.ArgumentParser, cls: type, dest_prefix: str = "", group: str | None = None,
                     given_only: bool = False) -> None:
    """Add the flags of config dataclass ``cls`` to ``parser`` (as :func:`config_parser` does).

    Each flag's value lands in ``dest_prefix + field name``, so that a nested config's flags
    (``--users`` -> ``model_users``) do not collide with the outer one's; :func:`pop_config_args`
    takes them back out. A field's flag is listed under its ``group`` option, else ``group``,
    else among the parser's options.
    """
    hints = typing.get_type_hints(cls)
    for f in fields(cls):
        if "help" not in f.metadata:
            continue
        meta = f.metadata
        hint, default = hints[f.name], _default(f)
        text = meta["help"]
        shown = default is not None and default is not MISSING and "(default:" not in text  # or says its own
        # a tuple read by a parse function is typed comma-separated (``--weights 1,0.5``)
        typed = ",".join(map(str, default)) if isinstance(default, tuple) and meta.get("parse") else default
        options: dict[str, Any] = {"dest": dest_prefix + f.name, "help": f"{text} (default: {typed})" if shown else text}
        if given_only:
            options["default"] = argparse.SUPPRESS
        elif default is MISSING:
            options["required"] = True
        else:
            options["default"] = default
        if meta.get("metavar") is not None:
            options["metavar"] = meta["metavar"]
        args = typing.get_args(hint)
        if meta.get("const", MISSING) is not MISSING:
            options["action"] = "store_const"
            options["const"] = meta["const"]
        elif meta.get("parse") is not None:
            options["type"] = _parser_of(flag_of(f), meta["parse"])
        elif hint is bool:
            options["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(hint) is tuple:
            options |= {"type": args[0], "nargs": "+"}
            if not given_only and isinstance(default, tuple):
                options["default"] = list(default)
        elif typing.get_origin(hint) is Literal:
            options["choices"] = args
        else:
            options["type"] = next(a for a in args if a is not type(None)) if args else hint
        argument_group(parser, meta.get("group") or group).add_argument(flag_of(f), **options)


def pop_config_args(args: argparse.Namespace | dict[str, Any], cls: type, dest_prefix: str = "") -> dict[str, Any]:
    """Take the values of ``cls``'s flags (added with ``dest_prefix``) out of parsed arguments.

    Returns ``{field name: value}`` for the flags present, ready for ``cls(**...)``; they are
    removed from ``args`` so that what is left belongs to the other configs.
    """
    values = vars(args) if isinstance(args, argparse.Namespace) else args
    taken: dict[str, Any] = {}
    for f in fields(cls):
        if "help" in f.metadata and dest_prefix + f.name in values:
            taken[f.name] = values.pop(dest_prefix + f.name)
    return taken


def _default(f: Field[Any]) -> Any:
    return f.default_factory() if f.default_factory is not MISSING else f.default


def _parser_of(flag: str, parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """``parse`` for argparse: its ValueError becomes a usage error that names the flag once."""

    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as e:
            msg = str(e) if str(e).startswith(flag) else f"{flag}: {e}"
            raise argparse.ArgumentError(None, msg) from None

    return convert


def argument_group(parser: argparse.ArgumentParser, title: str | None) -> argparse._ActionsContainer:
    """The parser's argument group of that title (made on first use); the parser itself for None."""
    if title is None:
        return parser
    for g in parser._action_groups:  # argparse lists its groups only in this attribute
        if g.title == title:
            return g
    return parser.add_argument_group(title)


def floats(text: str) -> tuple[float, ...]:
    """Comma-separated numbers (a ``parse`` function): ``"1,0.5,-2"`` -> ``(1.0, 0.5, -2.0)``."""
    try:
        return tuple(float(x) for x in text.split(","))
    except ValueError:
        msg = f"expected comma-separated numbers, got {text!r}"
        raise ValueError(msg) from None


def aware_time(text: str) -> datetime:
    """An ISO 8601 time with a timezone (a ``parse`` function): ``2025-01-01T00:00:00Z``."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        msg = f"{text!r} is not an ISO 8601 time such as 2025-01-01T00:00:00Z"
        raise ValueError(msg) from None
    if when.tzinfo is None:
        msg = f"{text!r} has no timezone; add Z or an offset such as +00:00"
        raise ValueError(msg)
    return when


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
