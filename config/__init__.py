"""Settings: the typed model (``settings``) and its TOML + environment loader (``loader``)."""

from config.errors import ConfigError
from config.loader import describe, load_settings
from config.settings import ListenAddress, Settings

__all__ = ["ConfigError", "ListenAddress", "Settings", "describe", "load_settings"]
