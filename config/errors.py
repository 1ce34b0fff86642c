"""The one exception of the configuration: raised by the loader and by each section's own
checks (``__post_init__``), so ``kratos-hooks config check`` catches all that start-up would."""

from __future__ import annotations


class ConfigError(ValueError):
    """An invalid setting; ``str()`` is a single human-readable line."""
