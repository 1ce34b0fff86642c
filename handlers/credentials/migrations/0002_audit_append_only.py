"""The audit table is append-only: the database itself refuses an UPDATE or DELETE of it.

Triggers are the one part of the schema whose syntax differs between the two back-ends, so
this step looks at the connection it is given.
"""

from yoyo import step

__depends__ = {"0001_tokens"}

_POSTGRES_APPLY = (
    """
    CREATE FUNCTION kh_token_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'kh_token_audit is append-only';
    END;
    $$
    """,
    """
    CREATE TRIGGER kh_token_audit_append_only BEFORE UPDATE OR DELETE ON kh_token_audit
    FOR EACH ROW EXECUTE FUNCTION kh_token_audit_append_only()
    """,
)
_POSTGRES_ROLLBACK = (
    "DROP TRIGGER kh_token_audit_append_only ON kh_token_audit",
    "DROP FUNCTION kh_token_audit_append_only()",
)
_SQLITE_APPLY = tuple(
    f"""
    CREATE TRIGGER kh_token_audit_no_{verb.lower()} BEFORE {verb} ON kh_token_audit
    BEGIN SELECT RAISE(ABORT, 'kh_token_audit is append-only'); END
    """
    for verb in ("UPDATE", "DELETE")
)
_SQLITE_ROLLBACK = (
    "DROP TRIGGER kh_token_audit_no_update",
    "DROP TRIGGER kh_token_audit_no_delete",
)


def _sqlite(conn):
    return type(conn).__module__.startswith("sqlite3")


def _run(conn, statements):
    cursor = conn.cursor()
    for statement in statements:
        cursor.execute(statement)


def apply(conn):
    _run(conn, _SQLITE_APPLY if _sqlite(conn) else _POSTGRES_APPLY)


def rollback(conn):
    _run(conn, _SQLITE_ROLLBACK if _sqlite(conn) else _POSTGRES_ROLLBACK)


steps = [step(apply, rollback)]
