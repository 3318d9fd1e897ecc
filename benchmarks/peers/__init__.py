"""The peer comparison: the features flow's window statistics written with other stream processors.

``bytewax_textbook`` and ``quix_windows`` compute what :mod:`benchmarks.peers.windows`
defines, the way each peer's documentation teaches; ``python -m benchmarks.bench_peers``
runs them beside the features flow and the bare consume loop on one input topic.
"""
