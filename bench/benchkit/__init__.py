"""Shared pieces of the ``make bench`` scripts: processes, nginx configs, load generators."""
