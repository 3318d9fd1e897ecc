"""DLRM ranking model: module, training, evaluation, artifact, batch scorer.

Modules: ``dlrm`` (the network), ``data`` (examples, time split, normalisation), ``train``
(``python -m models.train``), ``evaluate`` (``python -m models.evaluate``), ``baselines``,
``artifact`` (save/load with the feature-spec check), ``scorer`` (what the dataflow calls),
``plots`` and ``metrics``. Nothing is imported here, so ``models.metrics`` stays free of torch
for the producer.
"""
