"""Credentials: personal access tokens, organisation API keys and service tokens.

tokens.py       the format: prefix, random part, CRC32 checksum, hash, hint — pure
scopes.py       scope matching and the catalogue (which roles may hold which scope) — pure
catalogue.py    reading the catalogue file (TOKENS_SCOPES_FILE)
store*.py       the store contract, its SQL, Postgres (asyncpg) and SQLite back-ends
migrate.py      schema migrations (yoyo-migrations; ``kratos-hooks db migrate``)
"""
