"""A/B experiments of recommendation policies on the generator's users (docs/experiments.md).

* :mod:`experiments.design`: an experiment's name, arms, policies and serving settings.
* :mod:`experiments.assignment`: users to arms by a salted hash (GrowthBook's hash v2).
* :mod:`experiments.policies`: what a served user is shown (random, popularity, the oracle, ...);
  :mod:`experiments.model_policies` (the Two-Tower) and :mod:`experiments.pipeline_policy` (the
  flow's slates from the recommendations topic).
* :mod:`experiments.simulate`: offline experiments on the generator's world, with the truth;
  ``python -m experiments.offline`` runs one and writes its report.
* :mod:`experiments.data`: an experiment's events and truth as columns (simulated or read).
* :mod:`experiments.stats` and :mod:`experiments.analysis`: the statistics and the report;
  ``python -m experiments.analyze`` reads a produced experiment; :mod:`experiments.plots`.
"""
