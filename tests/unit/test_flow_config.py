"""The flow's two entry points build the same config from the same settings (dataflows/config.py).

``python -m bytewax.run "dataflows.features:get_flow(**settings)"`` passes keywords to
:func:`flow_config`; ``python -m dataflows.features`` parses flags into the same function.
"""

from __future__ import annotations

import pytest

from dataflows.cli import parse, parser
from dataflows.config import SETTINGS, FlowConfig, flow_config

CASES = [
    # (flags, the same as factory keywords, environment)
    ([], {}, {}),
    ([], {}, {"MODEL_PATH": "none"}),
    ([], {}, {"MODEL_PATH": "models/m.pt", "TOPIC_SCORES": "s2"}),
    (["--model", "none"], {"model": "none"}, {"MODEL_PATH": "models/m.pt"}),
    (["--model", "a.pt"], {"model": "a.pt"}, {"MODEL_PATH": "none"}),
    (["--backfill"], {"backfill": True}, {}),
    (["--backfill", "--examples-out", "none"], {"backfill": True, "examples_out": "none"}, {}),
    (["--window-s", "30", "--lateness-s", "2.0004", "--item-delay-s", "2.0015", "--dedup-horizon-s", "60.0006"],
     {"window_s": 30, "lateness_s": 2.0004, "item_delay_s": 2.0015, "dedup_horizon_s": 60.0006}, {}),
    (["--start", "end", "--event-features-topic", "ef", "--item-shards", "3", "--batch-size", "10"],
     {"start": "end", "event_features_topic": "ef", "item_shards": 3, "batch_size": 10}, {}),
]


@pytest.mark.parametrize(("flags", "keywords", "env"), CASES)
def test_flags_and_factory_keywords_give_the_same_config(flags, keywords, env):
    from_flags, _ = parse(parser(), flags, env)
    from_keywords = flow_config(keywords, env)
    assert from_flags == from_keywords
    assert from_flags.features == from_keywords.features  # derived, not compared by ==


def test_model_path_none_means_no_model_on_both_paths():
    for config in (parse(parser(), [], {"MODEL_PATH": "none"})[0], flow_config({}, {"MODEL_PATH": "none"})):
        assert config.model is None
    assert flow_config({}, {}).model == "artifacts/dlrm.pt"
    assert flow_config({}, {"MODEL_PATH": "m.pt"}).model == "m.pt"


def test_seconds_become_milliseconds_by_rounding_on_both_paths():
    config = parse(parser(), ["--lateness-s", "2.0004", "--item-delay-s", "2.0015"], {})[0]
    assert (config.features.allowed_lateness_ms, config.features.item_delay_ms) == (2000, 2002)


def test_every_setting_is_a_flag_and_a_keyword():
    text = parser().format_help()
    for name in SETTINGS:
        assert "--" + name.replace("_", "-") in text
    assert set(SETTINGS) >= {"window_s", "model", "examples_out", "backfill", "item_shards"}
    assert "topics" not in SETTINGS and "features" not in SETTINGS  # environment and derived, not settings


@pytest.mark.parametrize(
    ("keywords", "message"),
    [
        ({"window_s": 0}, "FlowConfig.window_s (--window-s) must be > 0, got 0"),
        ({"output": "none"}, "--output none only makes sense with --backfill"),
        ({"backfill": True, "output": "none", "examples_out": "none"}, "would write nothing"),
        ({"input": "no/such.jsonl", "backfill": True}, "--input 'no/such.jsonl': no such file"),
        ({"windw_s": 5}, "unknown setting 'windw_s'"),
    ],
)
def test_bad_settings_are_named(keywords, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        flow_config(keywords, {})


def test_a_config_built_in_python_is_checked_like_one_from_flags():
    with pytest.raises(ValueError, match="item_shards"):
        FlowConfig(item_shards=0)
