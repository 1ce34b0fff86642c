"""The sidecar router (internal listener): health, metrics, and later hooks and decisions."""
