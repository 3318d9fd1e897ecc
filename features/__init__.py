"""Plain-Python feature logic (no Bytewax): windows, point-in-time counts, records, the feature spec."""

import events  # noqa: F401  # installs the compiled-or-source switch (events/native.py) first
