"""The edge: app wiring, listeners, the streaming forwarder, client IP, and the login guard."""
