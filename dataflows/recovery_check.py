"""Before a run resumes (``-r DIR``): can it continue from the snapshot there? Said in one line.

Bytewax restores each source partition's state inside its worker threads, where an exception
becomes a Rust panic with a long backtrace. So the run first reads the newest snapshot of the
partition stage from the recovery directory's SQLite files (Bytewax's ``snaps`` table: step
id, state key, epoch, the pickled snapshot) and applies the same checks as the restore does
(:func:`dataflows.staged_source.require_resumable`), raising ``ValueError`` with the reason.
"""

from __future__ import annotations

import pickle
import sqlite3
from pathlib import Path

from dataflows.staged_source import EntryNeeds, require_resumable
from features.config import FeaturesConfig
from features.partition_stage import PartitionState

#: the flow's step whose snapshots hold the partition states (dataflows/wiring.py)
PARTITION_STEP = "features.read_validate_count_users"


def snapshot_states(directory: str | Path, step_id: str = PARTITION_STEP) -> list[PartitionState]:
    """The partition states of the newest snapshot of every state key in ``directory`` (none: empty)."""
    states: list[PartitionState] = []
    for path in sorted(Path(directory).glob("*.sqlite3")):
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            rows = db.execute(
                "SELECT ser_change FROM snaps s WHERE step_id = ? AND snap_epoch = "
                "(SELECT MAX(snap_epoch) FROM snaps t WHERE t.step_id = s.step_id AND t.state_key = s.state_key)",
                (step_id,)).fetchall()
        for (blob,) in rows:
            if blob is None:  # the key's state was discarded
                continue
            _, pickled = pickle.loads(blob)  # (the raw source's resume state, the pickled stage states)
            if pickled is not None:
                states.extend(pickle.loads(pickled).values())
    return states


def check_recovery(directory: str | Path, config: FeaturesConfig, needs: EntryNeeds) -> None:
    """Raise ``ValueError`` naming the difference when this run cannot resume from ``directory``."""
    for state in snapshot_states(directory):
        require_resumable(state, config, needs)
