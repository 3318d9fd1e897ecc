"""What the features flow runs with: one frozen config, and one function that builds it.

:class:`FlowConfig` has one field per setting a user can give, in the units they give it
(seconds for windows and timeouts); every field is a flag of ``python -m dataflows.features``
(``window_s`` -> ``--window-s``) and a keyword of the factory ``dataflows.features:get_flow``.
:func:`flow_config` is the only way either path builds one: it takes the settings the user
gave (flags or keywords) and the environment, and fills in what depends on the environment
(``MODEL_PATH``, ``TOPIC_*``) and on other settings (the examples file of a backfill). Both
paths therefore build the same config from the same settings.

>>> flow_config({}, {}).model
'artifacts/dlrm.pt'
>>> flow_config({}, {"MODEL_PATH": "none"}).model is None
True
>>> flow_config({"backfill": True, "model": "none"}, {}).examples_out
'data/examples.jsonl'
>>> flow_config({"window_s": 0.0}, {})
Traceback (most recent call last):
ValueError: FlowConfig.window_s (--window-s) must be > 0, got 0.0
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from broker.config import Topics
from common.config_cli import option, require_field
from features.config import FeaturesConfig

DEFAULT_MODEL_PATH = "artifacts/dlrm.pt"
DEFAULT_RETRIEVER_PATH = "artifacts/two_tower.pt"
RETRIEVER_ENV = "RETRIEVER_PATH"
DEFAULT_EXAMPLES = "data/examples.jsonl"  # where a backfill writes examples unless told otherwise
MODEL_ENV = "MODEL_PATH"
_FEATURES = FeaturesConfig()
#: FlowConfig fields in seconds -> the FeaturesConfig fields they set, in milliseconds
SECONDS_TO_MS = {"window_s": "window_ms", "lateness_s": "allowed_lateness_ms", "idle_timeout_s": "idle_timeout_ms",
                 "item_delay_s": "item_delay_ms", "dedup_horizon_s": "dedup_horizon_ms",
                 "label_horizon_s": "label_horizon_ms", "exclude_purchased_s": "purchase_window_ms"}


def _seconds(ms: int) -> float:
    return ms / 1000


@dataclass(frozen=True)
class FlowConfig:
    """How the features flow runs; what it computes is :attr:`features`, derived from the same fields."""

    input: str = option("kafka", "'kafka' (the interactions topic) or a JSONL file of interactions (with --backfill)")
    backfill: bool = option(False, "read the input to its end, write examples, stop")
    start: Literal["beginning", "end"] = option("beginning", "where to start reading without recovery state")
    output: Literal["kafka", "none"] = option("kafka", "write records to Kafka, or nothing but examples (backfill)")
    examples_out: str | None = option(None, f"labelled view examples, JSONL (with --backfill: {DEFAULT_EXAMPLES} "
                                      "unless given; 'none': off)")
    event_features_topic: str | None = option(None, "also write every event's point-in-time vector to this topic")
    model: str | None = option(None, f"DLRM artifact, or 'none' for features only (unset: ${MODEL_ENV}, else "
                               f"{DEFAULT_MODEL_PATH})")
    retriever: str | None = option(None, f"Two-Tower artifact for slates, or 'none' (unset: ${RETRIEVER_ENV}, else "
                                   f"{DEFAULT_RETRIEVER_PATH}); slates are made when it and the DLRM are there")
    slate_k: int = option(10, "items per slate")
    slate_candidates: int = option(100, "items retrieved and ranked per slate")
    slates_for: Literal["both", "session-starts", "requests"] = option(
        "both", "what gets a slate: every session start in interactions, every record of the requests topic, or both")
    exclude_purchased_s: float = option(_seconds(_FEATURES.purchase_window_ms),
                                        "slates leave out items the user bought this many seconds before")
    virtual_partitions: int = option(4, "partitions a JSONL input is split into, as the topic would be")
    batch_size: int = option(2000, "records per source poll")
    progress_interval: float = option(10.0, "seconds between progress lines")
    window_s: float = option(_seconds(_FEATURES.window_ms), "tumbling window, seconds")
    lateness_s: float = option(_seconds(_FEATURES.allowed_lateness_ms), "allowed lateness, seconds")
    idle_timeout_s: float = option(_seconds(_FEATURES.idle_timeout_ms),
                                   "idle seconds before a partition's watermark follows the wall clock")
    item_delay_s: float = option(_seconds(_FEATURES.item_delay_ms),
                                 "item features cover windows closed this many seconds before the event")
    dedup_horizon_s: float = option(_seconds(_FEATURES.dedup_horizon_ms), "remember event ids this many seconds")
    label_horizon_s: float = option(_seconds(_FEATURES.label_horizon_ms),
                                    "follow-ups within this many seconds of their view are its labels")
    item_shards: int = option(_FEATURES.item_shards, "item stage shards")
    # deployment and internals: not flags
    topics: Topics = field(default_factory=Topics.from_env)  # names from TOPIC_* variables
    heartbeat_ms: int = 1000  # idle source partitions report this often
    features: FeaturesConfig = field(init=False, repr=False, compare=False)  # derived from the fields above

    def __post_init__(self) -> None:
        c = "FlowConfig"
        for name in SECONDS_TO_MS:
            if name != "lateness_s":
                require_field(getattr(self, name) > 0, c, name, "> 0", getattr(self, name))
        require_field(self.lateness_s >= 0, c, "lateness_s", ">= 0", self.lateness_s)
        require_field(self.progress_interval > 0, c, "progress_interval", "> 0", self.progress_interval)
        for name in ("virtual_partitions", "batch_size", "item_shards", "slate_k", "slate_candidates"):
            require_field(getattr(self, name) >= 1, c, name, ">= 1", getattr(self, name))
        if self.output == "none" and not self.backfill:
            msg = "--output none only makes sense with --backfill"
            raise ValueError(msg)
        if self.input != "kafka" and not self.backfill:
            msg = f"--input {self.input!r} is a file: add --backfill (a file is read to its end)"
            raise ValueError(msg)
        if self.output == "none" and self.examples_out is None:
            msg = "--output none without examples would write nothing: give --examples-out"
            raise ValueError(msg)
        ms = {feature: round(getattr(self, name) * 1000) for name, feature in SECONDS_TO_MS.items()}
        object.__setattr__(self, "features", FeaturesConfig(**ms, item_shards=self.item_shards))

    @property
    def live(self) -> bool:
        """Reads Kafka until stopped (not a backfill)."""
        return self.input == "kafka" and not self.backfill

    def topics_to_create(self) -> list[str]:
        """Every topic this run reads or writes."""
        return self.topics.all() + ([self.event_features_topic] if self.event_features_topic else [])


#: the settings a user can give (flags, factory keywords)
SETTINGS = tuple(f.name for f in fields(FlowConfig) if "help" in f.metadata)


def flow_config(settings: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> FlowConfig:
    """The config for the settings a user gave (only those) in this environment.

    ``model`` unset: ``$MODEL_PATH``, else the default artifact; ``'none'`` (or empty): no model.
    ``retriever`` the same with ``$RETRIEVER_PATH``.
    ``examples_out`` unset: the default file for a backfill, none otherwise; ``'none'``: none.
    A JSONL ``input`` must exist. Raises ValueError naming the setting.
    """
    env = os.environ if environ is None else environ
    unknown = sorted(set(settings) - set(SETTINGS))
    if unknown:
        msg = f"unknown setting {unknown[0]!r} of the features flow (known: {', '.join(SETTINGS)})"
        raise ValueError(msg)
    values = dict(settings)
    model = values.get("model")
    if model is None:
        model = env.get(MODEL_ENV) or DEFAULT_MODEL_PATH
    values["model"] = None if model in ("", "none") else model
    retriever = values.get("retriever")
    if retriever is None:
        retriever = env.get(RETRIEVER_ENV) or DEFAULT_RETRIEVER_PATH
    values["retriever"] = None if retriever in ("", "none") else retriever
    examples = values.get("examples_out")
    if examples is None and values.get("backfill"):
        examples = DEFAULT_EXAMPLES
    values["examples_out"] = None if examples in ("", "none") else examples
    source = values.get("input", "kafka")
    if source != "kafka" and not Path(source).is_file():
        msg = f"--input {source!r}: no such file (use 'kafka' to read the interactions topic)"
        raise ValueError(msg)
    return FlowConfig(**values, topics=Topics.from_env(dict(env)))
