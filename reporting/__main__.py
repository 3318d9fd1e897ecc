"""``python -m reporting``: rebuild ``reports/index.html`` from the files in ``reports/``.

Examples::

    python -m reporting                                  # reports/ -> reports/index.html
    python -m reporting --reports runs/monday --out /tmp/monday.html

What the page reads, and which command writes each file: ``reporting/page.py`` and
docs/report.md. The page opens offline; pictures are linked relative to it.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from common.config_cli import config_parser, option, require_field, run_cli
from reporting.page import build_page


@dataclass(frozen=True)
class ReportConfig:
    """Where the reports are and where the page goes; CLI flags map 1:1 to fields."""

    reports: str = option("reports", "the folder of a run's reports")
    out: str | None = option(None, "the page (unset: <reports>/index.html)")

    def __post_init__(self) -> None:
        require_field(Path(self.reports).is_dir(), "ReportConfig", "reports", "an existing folder", self.reports)


def run(cfg: ReportConfig) -> Path:
    page = build_page(cfg.reports, cfg.out)
    print(f"wrote {page} (open file://{page.resolve()})", flush=True)
    return page


def main(argv: list[str] | None = None) -> int:
    parser = config_parser(ReportConfig, "python -m reporting", "Rebuild the run report page from the files in reports/.")
    return run_cli(parser, argv, ReportConfig, run, (OSError,))


if __name__ == "__main__":
    sys.exit(main())
