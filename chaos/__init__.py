"""Chaos and soak runs: the service as a real process behind fault-injecting relays, under a
load generator (``make chaos``, ``make soak``; README "Reliability", RELIABILITY.md)."""
