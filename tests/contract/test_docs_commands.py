"""Every command in the README and the docs works as written.

The commands of the fenced code blocks of README.md, docs/*.md and the folders' README.md
files, and their inline code spans that start with ``python -m`` or ``make``, are checked against the command lines they call, without running them (most need a
broker, a trained model or minutes):

* ``python -m MODULE ARGS``: MODULE exists; every flag the command uses (``--name``,
  ``--name=value``, ``-x``) is one that ``python -m MODULE --help`` lists (that of
  ``python -m MODULE COMMAND --help`` when MODULE has subcommands, plus the top level's); a
  value given to a flag with choices (``{a,b}`` in the help) is one of them. For
  ``python -m bytewax.run IMPORT_STR``, the flow's module exists and the keywords of a factory
  call (``module:get_flow(window_s=30)``) are flags of ``python -m module --help``.
* ``make TARGET``: a target of the Makefile.

Skipped, with the reason: commands that need Docker or its tools (``docker``, ``rpk``,
``kcat``), since no Docker engine runs on the machines the project is developed on (the
compose file has its own contract test, test_compose.py); blocks that are diagrams (box
drawing characters) or data (a language tag such as ``json``); a module name with a
placeholder (``python -m benchmarks.NAME --help``). Other programs (``mkdir``,
``source``, ``pip``) are not the project's and are not checked.

Each module's ``--help`` runs once, in one subprocess, all of them in parallel.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: Language tags of fenced blocks that hold shell commands; any other tag is data.
SHELL_LANGS = frozenset({"", "sh", "bash", "shell", "console"})
#: Box drawing characters and arrows: a block that has them is a diagram, not commands.
DIAGRAM = re.compile("[\u2190-\u21ff\u2500-\u257f\u25a0-\u25ff]")
PYTHONS = frozenset({"python", "python3", "python3.11", "python3.12", ".venv/bin/python"})
NEEDS_DOCKER = {
    "docker": "needs a Docker engine (none on the development machines; test_compose.py checks the file)",
    "rpk": "Redpanda's CLI, runs against the compose file's Redpanda (needs Docker)",
    "kcat": "an outside tool; docs/inspecting-topics.md says how far it works",
}
SHELL_OPERATORS = frozenset({"&&", "||", ";", "|", "&", "(", ")"})
FLAG = re.compile(r"(?<![\w-])(--?[A-Za-z][\w-]*)")
HELP_TIMEOUT_S = 180


def doc_pages(root: Path = ROOT) -> list[Path]:
    """README.md, docs/**/*.md and each top-level folder's README.md (hidden folders excluded)."""
    pages = [root / "README.md", *sorted((root / "docs").glob("**/*.md")), *sorted(root.glob("*/README.md"))]
    return [p for p in pages if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)]


@dataclass(frozen=True)
class Command:
    """One shell command of a page: where it is, its text, its words (environment assignments dropped)."""

    page: str
    line: int
    text: str
    argv: tuple[str, ...]
    quotes_balanced: bool = True

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


def fenced_blocks(text: str) -> Iterator[tuple[str, int, list[str]]]:
    """``(language tag, line number of the first line inside, lines)`` of each fenced block."""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        opening = re.match(r"^\s*(`{3,}|~{3,})\s*([\w+-]*)", lines[i])
        if not opening:
            i += 1
            continue
        fence, lang = opening.groups()
        body_start = i + 1
        j = body_start
        while j < len(lines) and not lines[j].strip().startswith(fence):
            j += 1
        yield lang.lower(), body_start + 1, lines[body_start:j]
        i = j + 1


def shell_lines(lines: list[str], first_line: int) -> Iterator[tuple[int, str]]:
    """Logical lines of a shell block: ``\\`` continuations joined, a ``$ `` prompt removed."""
    pending: list[str] = []
    start = first_line
    for number, raw in enumerate(lines, first_line):
        if not pending:
            start = number
        stripped = raw.strip()
        if stripped.endswith("\\"):
            pending.append(stripped[:-1])
            continue
        pending.append(stripped)
        joined = " ".join(pending).strip()
        pending = []
        joined = joined.removeprefix("$ ")
        if joined:
            yield start, joined
    if pending:
        yield start, " ".join(pending).strip()


def split_commands(line: str) -> list[list[str]]:
    """The simple commands of a shell line (split at ``&&``, ``;``, ``|``...; comments dropped)."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    commands: list[list[str]] = [[]]
    for token in lexer:
        if token in SHELL_OPERATORS:
            commands.append([])
        else:
            commands[-1].append(token)
    return [c for c in commands if c]


def without_env(words: list[str]) -> list[str]:
    """Drop leading ``NAME=value`` assignments (``RECSTREAM_PURE_PYTHON=1 python -m ...``)."""
    i = 0
    while i < len(words) and re.fullmatch(r"[A-Za-z_]\w*=.*", words[i]):
        i += 1
    return words[i:]


def inline_commands(text: str) -> Iterator[tuple[int, str]]:
    """``(line number, span)`` of the inline code spans outside fenced blocks that are commands."""
    inside = False
    for number, line in enumerate(text.splitlines(), 1):
        if re.match(r"^\s*(`{3,}|~{3,})", line):
            inside = not inside
            continue
        if not inside:
            for span in re.findall(r"(?<!`)`([^`]+)`(?!`)", line):
                if span.startswith(("python -m ", "make ")):
                    yield number, span


def commands_of_line(page: str, number: int, line: str) -> list[Command]:
    try:
        commands = split_commands(line)
    except ValueError:  # unbalanced quotes: a data line, or a broken command
        argv = without_env(line.split())
        return [Command(page, number, line, tuple(argv), quotes_balanced=False)] if argv else []
    return [Command(page, number, line, tuple(argv)) for argv in map(without_env, commands) if argv]


def page_commands(path: Path, root: Path = ROOT) -> list[Command]:
    """Every simple command in the shell blocks of a page that are not diagrams, and inline
    code spans that start with ``python -m`` or ``make``."""
    text = path.read_text()
    page = str(path.relative_to(root))
    found = []
    for lang, first, lines in fenced_blocks(text):
        if lang not in SHELL_LANGS or any(DIAGRAM.search(line) for line in lines):
            continue
        for number, line in shell_lines(lines, first):
            found += commands_of_line(page, number, line)
    for number, span in inline_commands(text):
        found += commands_of_line(page, number, span)
    return found


def all_commands(root: Path = ROOT) -> list[Command]:
    return [c for page in doc_pages(root) for c in page_commands(page, root)]


# --- what a command line accepts, from its --help ---------------------------------------


@dataclass
class CliSpec:
    """Flags (with whether they take a value, and their choices) and subcommands of one --help."""

    flags: dict[str, bool] = field(default_factory=dict)  # flag -> takes a value
    choices: dict[str, tuple[str, ...]] = field(default_factory=dict)
    subcommands: frozenset[str] = frozenset()
    error: str | None = None


def parse_help(text: str) -> CliSpec:
    """Read argparse's --help: the option lines' flags and choices, and the subcommands."""
    spec = CliSpec()
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped.startswith("-"):
            continue
        head = re.split(r"\s{2,}", stripped)[0]  # "-w N, --workers N" (the help text follows 2+ spaces)
        for part in head.split(", "):
            m = re.match(r"(--?[A-Za-z][\w-]*)(?:[ =](.+))?$", part)
            if not m:
                continue
            flag, metavar = m.groups()
            spec.flags[flag] = metavar is not None
            if metavar and (choice := re.match(r"\{([^}]*)\}", metavar)):
                spec.choices[flag] = tuple(choice.group(1).split(","))
    usage = text.split("\n\n", 1)[0]
    sub = re.search(r"(\{[^}]*\}|[A-Z][A-Z_]*) \.\.\.(?!\])", usage)
    if sub:
        if sub.group(1).startswith("{"):
            spec.subcommands = frozenset(sub.group(1)[1:-1].split(","))
        else:
            spec.subcommands = frozenset(re.findall(r"^ {4}([a-z][\w-]*)(?:\s{2,}|$)", text, flags=re.MULTILINE))
    return spec


def run_help(argv: tuple[str, ...]) -> CliSpec:
    """``python -m ARGV --help`` in a subprocess, parsed."""
    try:
        done = subprocess.run([sys.executable, "-m", *argv, "--help"], cwd=ROOT, capture_output=True, text=True,
                              timeout=HELP_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        return CliSpec(error=f"`python -m {' '.join(argv)} --help` took more than {HELP_TIMEOUT_S} s")
    if done.returncode != 0 or "usage:" not in done.stdout:
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        return CliSpec(error=f"`python -m {' '.join(argv)} --help` failed (exit {done.returncode}): {last}")
    return parse_help(done.stdout)


def module_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


# --- checking one command ----------------------------------------------------------------


@dataclass(frozen=True)
class PythonCall:
    """``python -m MODULE ARGS`` split into its parts."""

    module: str
    args: tuple[str, ...]

    @staticmethod
    def of(command: Command) -> PythonCall | None:
        argv = command.argv
        if len(argv) >= 3 and argv[0] in PYTHONS and argv[1] == "-m":
            return PythonCall(argv[2], argv[3:])
        return None

    @property
    def is_template(self) -> bool:
        """A placeholder in the module's name (``python -m benchmarks.NAME --help``): not a command."""
        return any(re.fullmatch(r"[A-Z][A-Z_]*", part) for part in self.module.split("."))

    def flags(self) -> list[tuple[str, str | None]]:
        """``(flag, the word after it or its =value)`` for every flag-looking argument."""
        out = []
        for i, word in enumerate(self.args):
            if FLAG.fullmatch(word.split("=", 1)[0]) and not re.fullmatch(r"-\d.*", word):
                name, eq, value = word.partition("=")
                nxt = self.args[i + 1] if i + 1 < len(self.args) else None
                out.append((name, value if eq else nxt))
        return out

    def positionals(self, spec: CliSpec) -> list[str]:
        """The arguments that are neither flags nor a flag's value."""
        out, skip = [], False
        for word in self.args:
            if skip:
                skip = False
                continue
            name, eq, _ = word.partition("=")
            if FLAG.fullmatch(name):
                skip = spec.flags.get(name, False) and not eq
                continue
            out.append(word)
        return out


class Checker:
    """Checks commands against the --help of the modules they call (each asked once)."""

    def __init__(self, commands: list[Command], makefile: Path = ROOT / "Makefile"):
        self.make_targets = frozenset(re.findall(r"^([A-Za-z0-9_.-]+)\s*:(?!=)", makefile.read_text(), re.MULTILINE))
        calls = [c for c in map(PythonCall.of, commands) if c is not None]
        self.helps: dict[tuple[str, ...], CliSpec] = {}
        # Phase 1: each module's own --help (only modules a command passes flags or a
        # subcommand to; a module called bare need only exist: some, like events.profiles,
        # do their work whatever their arguments are).
        first = {(c.module,) for c in calls if c.args and not c.is_template and module_exists(c.module)}
        first |= {(m,) for c in calls if c.module == "bytewax.run" for m in self._flow_modules(c)}
        self._ask(first)
        # Phase 2: the subcommands used.
        second = set()
        for c in calls:
            spec = self.helps.get((c.module,))
            if spec and spec.subcommands and (sub := self._subcommand(c, spec)):
                second.add((c.module, sub))
        self._ask(second)

    def _ask(self, keys: set[tuple[str, ...]]) -> None:
        keys = {k for k in keys if k not in self.helps}
        with ThreadPoolExecutor(max_workers=4) as pool:
            for key, spec in zip(keys, pool.map(run_help, keys), strict=True):
                self.helps[key] = spec

    @staticmethod
    def _subcommand(call: PythonCall, spec: CliSpec) -> str | None:
        return next((a for a in call.positionals(spec) if a in spec.subcommands), None)

    @staticmethod
    def _flow_modules(call: PythonCall) -> list[str]:
        """The module of a ``bytewax.run`` import string, when it has factory keywords to check."""
        for word in call.args:
            if not word.startswith("-") and ":" in word and "(" in word:
                return [word.split(":", 1)[0]]
        return []

    def problems(self, command: Command) -> list[str]:
        """What is wrong with a command, one sentence each (empty: it works as written)."""
        if not command.quotes_balanced:
            return [f"`{command.text}`: a quotation mark is not closed"]
        if command.argv[0] == "make":
            targets = [w for w in command.argv[1:] if not w.startswith("-") and "=" not in w]
            return [f"`make {t}`: no such target in the Makefile" for t in targets if t not in self.make_targets]
        call = PythonCall.of(command)
        if call is None or call.is_template:
            return []
        if not module_exists(call.module):
            return [f"`python -m {call.module}`: no such module"]
        if not call.args:
            return []
        spec = self.helps[(call.module,)]
        if spec.error:
            return [spec.error]
        where = f"python -m {call.module}"
        if spec.subcommands:
            sub = self._subcommand(call, spec)
            if sub is None:
                return [f"`{where}` needs one of the commands {sorted(spec.subcommands)}"]
            sub_spec = self.helps[(call.module, sub)]
            if sub_spec.error:
                return [sub_spec.error]
            merged = CliSpec(flags={**spec.flags, **sub_spec.flags}, choices={**spec.choices, **sub_spec.choices})
            spec, where = merged, f"{where} {sub}"
        found = []
        for flag, value in call.flags():
            if flag not in spec.flags:
                found.append(f"`{where}` has no flag {flag}")
            elif flag in spec.choices and value not in spec.choices[flag]:
                found.append(f"`{where} {flag} {value}`: not one of {list(spec.choices[flag])}")
        if call.module == "bytewax.run":
            found += self._flow_problems(call, spec)
        return found

    def _flow_problems(self, call: PythonCall, spec: CliSpec) -> list[str]:
        """The import string of ``bytewax.run``: its module exists, its factory's keywords are flags."""
        positionals = call.positionals(spec)
        if not positionals:
            return ["`python -m bytewax.run` needs the flow's import string"]
        module, _, attr = positionals[0].partition(":")
        if not module_exists(module):
            return [f"`python -m bytewax.run {positionals[0]}`: no module {module}"]
        if "(" not in attr:
            return []
        try:
            factory = ast.parse(attr, mode="eval").body
        except SyntaxError:
            return [f"`python -m bytewax.run {positionals[0]}`: not a Python call"]
        flow_spec = self.helps[(module,)]
        if flow_spec.error:
            return [flow_spec.error]
        keywords = [k.arg for k in getattr(factory, "keywords", []) if k.arg]
        return [f"`{positionals[0]}`: {k}= is no setting of the flow (no --{k.replace('_', '-')} in "
                f"`python -m {module} --help`)" for k in keywords if f"--{k.replace('_', '-')}" not in flow_spec.flags]


# --- the tests ---------------------------------------------------------------------------

COMMANDS = all_commands()
CHECKED = [c for c in COMMANDS if c.argv[0] == "make" or PythonCall.of(c) is not None]
DOCKER = [c for c in COMMANDS if c.argv[0] in NEEDS_DOCKER]


@pytest.fixture(scope="module")
def checker() -> Checker:
    return Checker(CHECKED)


def test_the_pages_have_commands_to_check() -> None:
    # The extraction must find the README's first commands; an empty list would pass vacuously.
    readme = {c.argv for c in CHECKED if c.page == "README.md"}
    assert ("make", "demo") in readme
    assert any(argv[:3] == ("python", "-m", "producers.synthetic") for argv in readme)


@pytest.mark.parametrize("command", CHECKED, ids=[f"{c.where} {' '.join(c.argv)[:60]}" for c in CHECKED])
def test_command_works_as_written(checker: Checker, command: Command) -> None:
    assert checker.problems(command) == [], f"{command.where}: {command.text}"


@pytest.mark.parametrize("command", DOCKER, ids=[f"{c.where} {' '.join(c.argv)[:60]}" for c in DOCKER])
def test_docker_commands_are_skipped_with_a_reason(command: Command) -> None:
    pytest.skip(f"{command.argv[0]}: {NEEDS_DOCKER[command.argv[0]]}")


# --- the checker finds what is wrong ------------------------------------------------------


def test_extraction_joins_continuations_splits_operators_and_skips_diagrams_and_data(tmp_path: Path) -> None:
    page = tmp_path / "README.md"
    page.write_text(
        "text `python -m demo --seed 1`, `python -c 1`, ``make no``\n"
        "```\n"
        "mkdir -p r && python -m bytewax.recovery r 1   # a comment --no-flag\n"
        "python -m models.train --examples a \\\n"
        "    --out b\n"
        "$ RECSTREAM_PURE_PYTHON=1 python -m events.hotpath\n"
        "python -m broker.console \"scores --print-key\n"
        "```\n"
        "```json\n"
        "python -m in.data --x\n"
        "```\n"
        "```\n"
        "python -m in.diagram ──► python -m other\n"
        "```\n")
    got = [(c.line, c.argv) for c in page_commands(page, tmp_path)]
    assert got == [
        (3, ("mkdir", "-p", "r")),
        (3, ("python", "-m", "bytewax.recovery", "r", "1")),
        (4, ("python", "-m", "models.train", "--examples", "a", "--out", "b")),
        (6, ("python", "-m", "events.hotpath")),
        (7, ("python", "-m", "broker.console", '"scores', "--print-key")),
        (1, ("python", "-m", "demo", "--seed", "1")),
    ]
    broken = page_commands(page, tmp_path)[-2]
    assert not broken.quotes_balanced
    assert Checker([]).problems(broken) == [f"`{broken.text}`: a quotation mark is not closed"]


def test_the_checker_reports_each_kind_of_broken_command(tmp_path: Path) -> None:
    makefile = tmp_path / "Makefile"
    makefile.write_text("X := 1\nhelp:  ## list\ndemo: venv\n")
    lines = {
        "python -m producers.synthetic --rate 5 --no-such-flag": "has no flag --no-such-flag",
        "python -m dataflows.features --start middle": "--start middle`: not one of ['beginning', 'end']",
        "python -m no_such_module.at_all --x": "no such module",
        "python -m broker start --background --no-such": "`python -m broker start` has no flag --no-such",
        "python -m broker --state-dir d": "needs one of the commands",
        "make no-such-target": "`make no-such-target`: no such target",
        "python -m bytewax.run \"dataflows.features:get_flow(window_s=30, no_such=1)\"": "no_such= is no setting",
        "python -m bytewax.run no_such_flow_module": "no module no_such_flow_module",
    }
    good = [
        "python -m producers.synthetic --rate=5 --parallel off --sink stdout --count 5",
        "python -m broker --state-dir d start --background",
        "python -m bytewax.run \"dataflows.features:get_flow(window_s=30)\" -r rec -s 10 -b 60",
        "make demo X=2",
        "python -m events.profiles",
        "python -m benchmarks.NAME --help",
    ]
    commands = {text: Command("t.md", 1, text, tuple(without_env(split_commands(text)[0])))
                for text in [*lines, *good]}
    checker = Checker(list(commands.values()), makefile)
    for text, expected in lines.items():
        found = checker.problems(commands[text])
        assert len(found) == 1 and expected in found[0], (text, found)
    for text in good:
        assert checker.problems(commands[text]) == [], text
