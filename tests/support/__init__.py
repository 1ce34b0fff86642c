"""Test doubles that are real network peers: the fault-injecting relay, byte-echo upstream."""
