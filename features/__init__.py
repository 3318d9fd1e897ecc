"""Plain-Python feature logic (no Bytewax): windows, point-in-time counts, records, the feature spec."""
