"""Kratos ``web_hook`` handlers on the internal listener (``/hooks/kratos/…``).

auth          who may call a hook (api key header / basic auth, rotation, constant time)
common        the request envelope every hook shares: auth, body bound, budget, metrics
events        the welcome event (NestJS envelope) built from a hook payload — pure
verification  POST /hooks/kratos/verification: reserve, outbox, publish
identity      POST /hooks/kratos/identity: resolve, merge into metadata_public
sync          resolution + minimal metadata patch, shared by the hook, relay and reconcile
kratos_admin  the Kratos Admin API client and the JSON-Patch merge (pure)
resolvers     the resolver chain: Postgres, then the platform HTTP API
breaker       circuit breakers
publisher     aio-pika robust connection with publisher confirms
reservation   once-per-identity reservations in Redis
outbox        the durable outbox: Postgres table, or the fsync'd spool file (spool.py),
              the spool standing behind the table when the database fails (fallback.py)
(pg — asyncpg pools that keep asyncpg off the disk — is the kernel's: proxy.kernel.pg)
relay         the background task draining the outbox
install       wiring into the internal app (INTERNAL_FEATURES)
reconcile     the identity walk behind ``kratos-hooks reconcile identities``
cli           ``kratos-hooks reconcile`` and ``kratos-hooks outbox``
metrics, keys Prometheus metrics and typed app keys of the feature
"""
