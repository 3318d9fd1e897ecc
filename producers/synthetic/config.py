"""Configuration of the synthetic producer: one frozen dataclass for the run, one for the model.

:class:`ModelParams` is the ground-truth world (who the users are, how they choose and
convert); :class:`ProducerConfig` is the run (mode, rate, bounds, sink, faults). Every field
has a default and a unit; the CLI maps flags 1:1 onto fields (``--view-gap`` sets
``ModelParams.view_gap_s``). Validation happens at construction and names the field:

>>> ProducerConfig(rate=-5)
Traceback (most recent call last):
...
producers.synthetic.config.ConfigError: --rate must be > 0 (events per second), got -5
>>> ModelParams(p_preferred=0.5, p_popular=0.3).p_random  # the random route takes the rest
0.2
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import Any, Final, Literal

from broker.config import BOOTSTRAP_ENV
from common.config_cli import aware_time, floats, option
from experiments.design import ExperimentDesign
from producers.synthetic.faults import FaultRates

Mode = Literal["live", "backfill"]
MODES: Final[tuple[Mode, ...]] = ("live", "backfill")
SinkName = Literal["kafka", "jsonl", "csv", "stdout"]
SINKS: Final[tuple[SinkName, ...]] = ("kafka", "jsonl", "csv", "stdout")
Parallel = Literal["auto", "on", "off"]
PARALLEL: Final[tuple[Parallel, ...]] = ("auto", "on", "off")


#: the terms of each funnel logit, in the order of ``ModelParams.*_weights``
LOGIT_TERMS: Final = ("affinity", "user_bias", "quality", "popularity", "price")
TERMS_TEXT: Final = "affinity, user bias, item quality, standardised log popularity, standardised log price"


class ConfigError(ValueError):
    """A configuration value is out of range; the message names the flag and the value."""


def flag(name: str) -> str:
    """The CLI flag of a config field.

    >>> flag("duration_s")
    '--duration'
    """
    return "--" + name.removesuffix("_s").replace("_", "-")


def param(default: float | tuple[float, ...], help_text: str, flag_name: str | None = None) -> Any:
    """A model field with its help text (the CLI shows it with the default); ``flag_name`` if not ``--field-name``.

    Weight tuples are typed comma-separated (``--click-weights 1,1,1,0.3,-0.2``).
    """
    if isinstance(default, tuple):
        return option(default, help_text, flag=flag_name, parse=floats, metavar="W,W,W,W,W")
    return option(default, help_text, flag=flag_name, metavar="N" if isinstance(default, int) else "X")


@dataclass(frozen=True)
class ModelParams:
    """The ground-truth generator: world, sessions and funnel. Defaults keep the signal learnable.

    The click, cart and purchase probabilities of a view are logistic in the user-item
    affinity ``log(5 * pref_u[cat_i]) + taste_u . taste_i``, the user's bias, the item's
    quality, popularity and price, and the session's device; there is no per-event noise
    inside a probability. Intercepts are calibrated so the funnel rates hit the targets.
    """

    users: int = param(10_000, "number of users")
    items: int = param(5_000, "number of items")
    user_share: float = param(0.8, "share of events made by the top --user-top of users (rank-based Zipf)")
    user_top: float = param(0.2, "fraction of users whose event share is --user-share")
    item_share: float = param(0.3, "share of views going to the top --item-top of items (solved on the choice mix)")
    item_top: float = param(0.1, "fraction of items whose view share is --item-share")
    p_preferred: float = param(0.6, "share of views chosen from the user's preferred categories")
    p_popular: float = param(0.3, "share of views chosen by global popularity")
    pref_alpha: float = param(0.5, "Dirichlet concentration of each category in a user's preference")
    pref_segment_alpha: float = param(4.0, "extra Dirichlet concentration on the user's segment category")
    latent_dim: int = param(8, "dimension K of the latent user and item taste vectors")
    latent_sd: float = param(0.5, "standard deviation of the latent dot product taste_u . taste_i (logit units)")
    user_bias_sd: float = param(0.5, "standard deviation of the user bias (logit units)")
    item_quality_sd: float = param(0.5, "standard deviation of item quality (logit units)")
    price_mu: float = param(4.0, "mean of log(price in USD)")
    price_sigma: float = param(1.0, "standard deviation of log(price in USD)")
    click_rate: float = param(0.6, "target P(click | view), calibrates the click intercept")
    cart_rate: float = param(0.5, "target P(add_cart | click), calibrates the cart intercept")
    purchase_rate: float = param(1 / 3, "target P(purchase | add_cart), calibrates the purchase intercept")
    click_weights: tuple[float, ...] = param((1.0, 1.0, 1.0, 0.3, -0.2), "click logit weights of " + TERMS_TEXT)
    cart_weights: tuple[float, ...] = param((0.8, 0.5, 0.5, 0.1, -0.5), "add_cart logit weights of " + TERMS_TEXT)
    purchase_weights: tuple[float, ...] = param((0.6, 0.5, 0.3, 0.0, -0.7), "purchase logit weights of " + TERMS_TEXT)
    desktop_effect: float = param(0.15, "click logit offset of desktop sessions (mobile is 0)")
    tablet_effect: float = param(-0.15, "click logit offset of tablet sessions (mobile is 0)")
    primary_device_share: float = param(0.8, "probability that a session uses the user's primary device")
    views_per_session: float = param(4.0, "mean views per session (geometric, >= 1)")
    view_gap_s: float = param(30.0, "mean seconds between views of a session (exponential)", "--view-gap")
    click_delay_s: float = param(10.0, "mean seconds from view to click (exponential, plus 1 s)", "--click-delay")
    cart_delay_s: float = param(40.0, "mean seconds from click to add_cart (exponential, plus 1 s)", "--cart-delay")
    purchase_delay_s: float = param(90.0, "mean seconds from add_cart to purchase (exponential, plus 1 s)", "--purchase-delay")
    diurnal_amplitude: float = param(1.0, "strength of the daily cycle by local hour (0 = flat)")
    rating_affinity: float = param(0.5, "rating points per unit of affinity")
    rating_noise: float = param(0.6, "standard deviation of rating noise (rating points)")
    calibration_views: int = param(200_000, "views sampled to calibrate the intercepts")

    @property
    def p_random(self) -> float:
        """Share of uniformly random item choices: what the other two leave."""
        return round(1.0 - self.p_preferred - self.p_popular, 12)

    def __post_init__(self) -> None:
        _check(self.users >= 10, "users", self.users, ">= 10")
        _check(self.items >= 10, "items", self.items, ">= 10")
        for name in ("user_share", "user_top", "item_share", "item_top", "click_rate", "cart_rate", "purchase_rate"):
            value = getattr(self, name)
            _check(0 < value < 1, name, value, "strictly between 0 and 1")
        _check(self.user_share > self.user_top, "user_share", self.user_share, "> --user-top (a top group cannot do less than its size)")
        _check(self.item_share > self.item_top, "item_share", self.item_share, "> --item-top (a top group cannot do less than its size)")
        for name in ("p_preferred", "p_popular", "primary_device_share"):
            value = getattr(self, name)
            _check(0 <= value <= 1, name, value, "between 0 and 1")
        _check(self.p_random >= 0, "p_popular", self.p_popular, f"<= 1 - --p-preferred ({1 - self.p_preferred:g})")
        _check(self.latent_dim >= 1, "latent_dim", self.latent_dim, ">= 1")
        _check(self.views_per_session >= 1, "views_per_session", self.views_per_session, ">= 1")
        _check(self.calibration_views >= 1000, "calibration_views", self.calibration_views, ">= 1000")
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name.endswith("_weights"):
                ok = len(value) == len(LOGIT_TERMS) and all(math.isfinite(w) for w in value)
                _check(ok, f.name, value, f"{len(LOGIT_TERMS)} finite numbers ({TERMS_TEXT})")
                continue
            _check(math.isfinite(value), f.name, value, "a finite number")
            if f.name.endswith(("_sd", "_s", "_alpha", "_noise", "sigma", "amplitude")):
                _check(value >= 0, f.name, value, ">= 0")
        _check(self.pref_alpha > 0, "pref_alpha", self.pref_alpha, "> 0")


@dataclass(frozen=True)
class ProducerConfig:
    """One producer run. Live mode paces to ``rate`` on the wall clock; backfill writes history."""

    seed: int = option(7, "root of all randomness (numpy SeedSequence)", group="run")
    mode: Mode = option("live", "write history with realistic event times as fast as possible (default: live pacing)",
                        flag="--backfill", const="backfill", group="run")
    rate: float = option(1000.0, "events per second: wall clock in live mode, event time in backfill", group="run")
    start: datetime | None = option(None, "event time of the stream's start, with a timezone, e.g. 2025-01-01T00:00:00Z "
                                    "(default: now in live mode, now minus the span in backfill)",
                                    parse=aware_time, metavar="ISO8601", group="run")
    days: float = option(1.0, "backfill span in days of event time (unless --duration is given)", group="run")
    count: int | None = option(None, "stop after N events, duplicates not counted (default: no limit)", metavar="N",
                               group="run")
    duration_s: float | None = option(None, "live: stop after S wall seconds; backfill: S seconds of event time "
                                      "instead of --days (default: none)", flag="--duration", metavar="S", group="run")
    sink: SinkName = option("kafka", f"where events go, one of {', '.join(SINKS)}; kafka: the broker of "
                            f"${BOOTSTRAP_ENV}, else the embedded one", parse=str, metavar="{" + ",".join(SINKS) + "}",
                            group="sink")
    out: Path | None = option(None, "output file of the jsonl and csv sinks (required for them)", metavar="PATH",
                              group="sink")
    truth_out: Path | None = option(None, "truth JSONL (file sinks: default OUT with .truth.jsonl; stdout sink: none; "
                                    "kafka sink: write the truth here instead of the truth topic)", metavar="PATH",
                                    group="sink")
    topic: str | None = option(None, "events topic (default: $TOPIC_INTERACTIONS or interactions)", group="sink")
    truth_topic: str | None = option(None, "truth topic (default: $TOPIC_TRUTH or interactions-truth)", group="sink")
    partitions: int = option(4, "partitions of created topics; virtual partitions counted for file sinks", group="sink")
    truth: bool = option(True, "send truth records (view probabilities, faults); --no-truth only for load tests",
                         group="sink")
    profiles: bool = option(True, "publish the catalog and user profiles at start (topics items and users, or "
                            "files next to --out)", group="sink")
    users_out: Path | None = option(None, "user profiles JSONL (file sinks: default OUT with .users.jsonl, .users.csv "
                                    "for csv; kafka sink: write them here instead of the users topic)", metavar="PATH",
                                    group="sink")
    items_out: Path | None = option(None, "the catalog JSONL (file sinks: default OUT with .items.jsonl, .items.csv "
                                    "for csv; kafka sink: write it here instead of the items topic)", metavar="PATH",
                                    group="sink")
    faults: FaultRates = option(FaultRates(), "per-event fault rates, e.g. malformed=0.001,missing=0.001,invalid=0.001,"
                                "duplicate=0.002,late=0.002 (default: none)", parse=FaultRates.parse, metavar="SPEC",
                                group="run")
    late_by_s: float = option(300.0, "seconds a late event's time is pushed back", flag="--late-by", metavar="S",
                              group="run")
    delivery_timeout_ms: int = option(30_000, "a Kafka message not acknowledged by then counts as failed "
                                      "(message.timeout.ms)", metavar="MS", group="sink")
    progress_interval_s: float = option(5.0, "seconds between progress lines on stderr, 0 for none",
                                        flag="--progress-interval", metavar="S", group="run")
    report: Path | None = option(None, "write the JSON report here (default: none)", metavar="PATH", group="run")
    block_events: int = option(65_536, "events generated per numpy block; part of the stream's identity", metavar="N",
                               group="run")
    parallel: Parallel = option("auto", "build events in a second process (uses both cores); auto: file backfills of "
                                "300k+ events and live rates of 20k/s or more", parse=str, metavar="{auto,on,off}",
                                group="run")
    model: ModelParams = field(default_factory=ModelParams)
    experiment: ExperimentDesign | None = None  # experiment mode: serve slates to enrolled users (--experiment)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            msg = f"unknown mode {self.mode!r}; expected one of {', '.join(MODES)}"
            raise ConfigError(msg)
        if self.sink not in SINKS:
            msg = f"unknown sink {self.sink!r}; expected one of {', '.join(SINKS)}"
            raise ConfigError(msg)
        _check(math.isfinite(self.rate) and self.rate > 0, "rate", self.rate, "> 0 (events per second)")
        _check(math.isfinite(self.days) and self.days > 0, "days", self.days, "> 0")
        if self.count is not None:
            _check(self.count >= 1, "count", self.count, ">= 1")
        if self.duration_s is not None:
            _check(math.isfinite(self.duration_s) and self.duration_s > 0, "duration_s", self.duration_s, "> 0 seconds")
        if self.start is not None and self.start.tzinfo is None:
            msg = f"--start {self.start.isoformat()} has no timezone; add Z or an offset such as +00:00"
            raise ConfigError(msg)
        if self.sink in ("jsonl", "csv") and self.out is None:
            msg = f"--out PATH is required with --sink {self.sink}"
            raise ConfigError(msg)
        _check(self.partitions >= 1, "partitions", self.partitions, ">= 1")
        _check(self.late_by_s > 0, "late_by_s", self.late_by_s, "> 0 seconds")
        _check(self.delivery_timeout_ms >= 1, "delivery_timeout_ms", self.delivery_timeout_ms, ">= 1")
        _check(self.progress_interval_s >= 0, "progress_interval_s", self.progress_interval_s, ">= 0")
        _check(self.block_events >= 64, "block_events", self.block_events, ">= 64")
        _check(self.parallel in PARALLEL, "parallel", self.parallel, f"one of {', '.join(PARALLEL)}")
        if self.experiment is not None and self.parallel == "on":
            msg = "--parallel on does not go with --experiment: the policies run in the producer's process"
            raise ConfigError(msg)

    @property
    def truth_path(self) -> Path | None:
        """Where file sinks write truth records: ``truth_out``, else ``<out stem>.truth.jsonl``.

        >>> ProducerConfig(sink="jsonl", out=Path("data/ev.jsonl")).truth_path
        PosixPath('data/ev.truth.jsonl')
        """
        if self.truth_out is not None:
            return self.truth_out
        if self.out is None:
            return None
        return self.out.with_name(self.out.stem + ".truth.jsonl")


    def profile_path(self, kind: str) -> Path | None:
        """Where user profiles (``kind`` "users") or the catalog ("items") go as a file, or None.

        ``users_out``/``items_out``, else for file sinks ``<out stem>.users.jsonl`` (``.csv`` for
        the CSV sink); None means the Kafka sink's topic (or, for stdout, nowhere).

        >>> ProducerConfig(sink="csv", out=Path("data/ev.csv")).profile_path("items")
        PosixPath('data/ev.items.csv')
        """
        given = self.users_out if kind == "users" else self.items_out
        if given is not None or self.out is None or self.sink not in ("jsonl", "csv"):
            return given
        return self.out.with_name(f"{self.out.stem}.{kind}.{'csv' if self.sink == 'csv' else 'jsonl'}")


def _check(ok: bool, name: str, value: object, expected: str) -> None:
    if not ok:
        msg = f"{flag(name)} must be {expected}, got {value!r}"
        raise ConfigError(msg)
