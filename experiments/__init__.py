"""A/B experiments of recommendation policies on the generator's users (docs/experiments.md).

* :mod:`experiments.assignment`: users to arms by a salted hash (GrowthBook's hash v2).
* :mod:`experiments.policies`: what a served user is shown (random, popularity, ...).
* :mod:`experiments.simulate`: offline experiments on the generator's world, with the truth.
* :mod:`experiments.stats`: the statistics (delta method, z-tests, SRM, power, sequential).
* :mod:`experiments.analyze`: ``python -m experiments.analyze``, the report of an experiment.
"""
