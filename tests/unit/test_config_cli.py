"""common.config_cli: flags from config dataclasses (names, parse functions, groups, nested configs)."""

from __future__ import annotations

import argparse
from dataclasses import MISSING, dataclass
from datetime import UTC, datetime
from typing import Literal

import pytest

from common.config_cli import (
    add_config_flags,
    argument_group,
    aware_time,
    config_parser,
    floats,
    option,
    pop_config_args,
)


def _pair(text: str) -> tuple[int, int]:
    a, sep, b = text.partition("x")
    if not sep:
        msg = f"--size expects WxH, got {text!r}"  # names its flag itself
        raise ValueError(msg)
    return int(a), int(b)


@dataclass(frozen=True)
class Run:
    mode: Literal["live", "backfill"] = option("live", "write history (default: live pacing)", flag="--backfill",
                                               const="backfill", group="run")
    wait_s: float = option(5.0, "seconds to wait", flag="--wait", metavar="S", group="run")
    start: datetime | None = option(None, "first event time", parse=aware_time, metavar="ISO8601", group="run")
    size: tuple[int, int] = option((3, 4), "width and height", parse=_pair, metavar="WxH", group="output")
    weights: tuple[float, ...] = option((1.0, 0.5), "relative weights", parse=floats, metavar="W,W", group="output")
    verbose: bool = option(False, "print more")


@dataclass(frozen=True)
class Model:
    users: int = option(10, "number of users", metavar="N")
    wait_s: float = option(1.0, "model seconds", flag="--model-wait")


@dataclass(frozen=True)
class Extra:
    name: str = option(MISSING, "the experiment's name", flag="--experiment", metavar="NAME")
    share: float = option(1.0, "share of users")


def _parser() -> argparse.ArgumentParser:
    p = config_parser(Run, "demo", "A demo.")
    add_config_flags(p, Model, dest_prefix="model_", group="model")
    add_config_flags(p, Extra, dest_prefix="extra_", group="extra", given_only=True)
    return p


def _error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exc:
        _parser().parse_args(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("demo: error: "), err
    return err.removeprefix("demo: error: ").rstrip("\n")


def test_flag_name_override_and_a_switch_that_sets_a_value():
    args = _parser().parse_args(["--backfill", "--wait", "2.5"])
    assert Run(**pop_config_args(args, Run)) == Run(mode="backfill", wait_s=2.5)
    assert Run(**pop_config_args(_parser().parse_args([]), Run)) == Run()


def test_default_flag_names_are_not_added_beside_an_override(capsys):
    flags = {flag for action in _parser()._actions for flag in action.option_strings}
    assert {"--backfill", "--wait", "--model-wait", "--experiment"} <= flags
    assert not flags & {"--mode", "--wait-s", "--model-wait-s", "--name"}
    assert _error(["--backfill", "live"], capsys) == "unrecognized arguments: live"  # a switch takes no value


def test_parse_functions_build_the_value():
    args = _parser().parse_args(["--start", "2025-01-01T00:00:00Z", "--size", "5x6", "--weights", "2,-1"])
    run = Run(**pop_config_args(args, Run))
    assert run.start == datetime(2025, 1, 1, tzinfo=UTC)
    assert (run.size, run.weights) == ((5, 6), (2.0, -1.0))


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--start", "2025-01-01T00:00:00"], "--start: '2025-01-01T00:00:00' has no timezone; add Z or an offset such as +00:00"),
        (["--start", "soon"], "--start: 'soon' is not an ISO 8601 time such as 2025-01-01T00:00:00Z"),
        (["--weights", "1,x"], "--weights: expected comma-separated numbers, got '1,x'"),
        (["--size", "5"], "--size expects WxH, got '5'"),  # a message that names the flag keeps it once
    ],
)
def test_a_parse_error_is_one_line_that_names_the_flag(argv, expected, capsys):
    assert _error(argv, capsys) == expected


def test_help_lists_flags_in_their_groups_with_defaults():
    text = _parser().format_help()
    text = text[text.index("\noptions:\n"):]  # the flags' descriptions, after the usage lines
    sections = {title: text.index(f"\n{title}:\n") for title in ("run", "output", "model", "extra")}
    assert list(sections) == sorted(sections, key=sections.get)  # groups in the order first used
    assert sections["run"] < text.index("  --backfill ") < text.index("  --wait S ") < sections["output"]
    assert sections["output"] < text.index("--size WxH") < sections["model"] < text.index("--users N")
    assert text.index("  --verbose, --no-verbose") < sections["run"]  # no group: the parser's own options
    assert "(default: 1.0,0.5)" in text and "(default: 3,4)" in text  # typed as the parse function takes them
    assert "seconds to wait (default: 5.0)" in text
    assert text.count("(default: live pacing)") == 1 and "(default: live)" not in text  # a help text's own default


def test_argument_group_is_found_by_title_or_made():
    p = _parser()
    run = argument_group(p, "run")
    run.add_argument("--check", action="store_true", help="check only")
    assert argument_group(p, "run") is run and argument_group(p, None) is p
    assert p.format_help().index("--check") < p.format_help().index("\noutput:\n")
    assert p.parse_args(["--check"]).check is True


def test_nested_configs_take_their_own_flags_by_prefix():
    args = _parser().parse_args(["--wait", "3", "--model-wait", "9", "--users", "20", "--experiment", "e"])
    model = Model(**pop_config_args(args, Model, dest_prefix="model_"))
    extra = pop_config_args(args, Extra, dest_prefix="extra_")
    run = Run(**pop_config_args(args, Run))
    assert (run.wait_s, model) == (3.0, Model(users=20, wait_s=9.0))
    assert extra == {"name": "e"}  # given_only: the flags given, nothing else
    assert vars(args) == {}  # every value went to one config


def test_given_only_leaves_out_flags_not_given_and_a_missing_default_is_required():
    args = _parser().parse_args([])
    assert pop_config_args(args, Extra, dest_prefix="extra_") == {}
    p = config_parser(Extra, "extra", "Required name.")
    assert p.parse_args(["--experiment", "x"]).name == "x"
    with pytest.raises(SystemExit):
        p.parse_args([])
