"""The edge: the public listener's forwarding path and the hooks it carries (logout watch)."""
