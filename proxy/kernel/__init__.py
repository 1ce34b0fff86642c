"""The kernel: what every feature may import, and which imports no feature — errors, logs,
metrics primitives, digests, the request view, the Redis and Kratos clients, the event bus."""
