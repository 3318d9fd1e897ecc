"""The synthetic interaction producer: ``python -m producers.synthetic``.

Modules, in the order data flows through them:

* :mod:`.config` - the run and the ground-truth model as frozen dataclasses;
* :mod:`.world` - users and items with rank-based skew; :mod:`.behavior` - item choice,
  funnel probabilities (calibrated), ratings; :mod:`.stream` - sessions in numpy blocks;
* :mod:`.prepare` - world, seeds and ids of a run; :mod:`.serialize` - event and truth bytes;
  :mod:`.faults` - fault injection; :mod:`.batches` - blocks to ready-to-send batches;
  :mod:`.parallel` - batches built in a worker process;
* :mod:`.pacing` - live deadlines; :mod:`.sinks` - Kafka, files, stdout; :mod:`.runner` - a
  run end to end; :mod:`.report` - statistics and the report; :mod:`.check` - ``--check``.
"""
