"""Recommendations in the stream: retrieve with the Two-Tower, rank with the DLRM, publish slates.

``slates.stage`` holds the slate stage's state (the copy of every item's closed windows, the
requests waiting for them); ``slates.ranker`` turns ready requests into slates, one batch at a
time. ``dataflows/wiring.py`` wires them into the features flow; docs/slates.md explains it.
"""
