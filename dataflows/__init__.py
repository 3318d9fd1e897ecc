"""Bytewax wiring: the features flow and its sources and sinks (logic lives in features/)."""

import events  # noqa: F401  # first: decides compiled or Python source before dataflows.kafka_batches loads
