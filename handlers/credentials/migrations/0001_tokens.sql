-- Tokens and their audit trail. One dialect for Postgres and SQLite: times are epoch seconds
-- (DOUBLE PRECISION), scopes a space-separated list; the secret itself is never stored.

CREATE TABLE kh_tokens (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    hint TEXT NOT NULL,
    owner TEXT NOT NULL,
    name TEXT NOT NULL,
    scopes TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    created_by TEXT NOT NULL,
    expires_at DOUBLE PRECISION,
    rate_limit INTEGER NOT NULL DEFAULT 0,
    last_used_at DOUBLE PRECISION,
    last_used_ip TEXT,
    revoked_at DOUBLE PRECISION,
    revoked_by TEXT,
    revoked_reason TEXT,
    expiry_warned_at DOUBLE PRECISION,
    expired_noted_at DOUBLE PRECISION
);

CREATE INDEX kh_tokens_owner ON kh_tokens (kind, owner);

CREATE INDEX kh_tokens_revoked ON kh_tokens (revoked_at);

CREATE INDEX kh_tokens_expires ON kh_tokens (expires_at);

CREATE TABLE kh_token_audit (
    id TEXT PRIMARY KEY,
    token_id TEXT NOT NULL,
    action TEXT NOT NULL,
    actor TEXT NOT NULL,
    at DOUBLE PRECISION NOT NULL,
    detail TEXT NOT NULL DEFAULT '{}'
);

CREATE INDEX kh_token_audit_token ON kh_token_audit (token_id, at);
