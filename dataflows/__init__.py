"""Bytewax wiring: the features flow and its sources and sinks (logic lives in features/)."""
