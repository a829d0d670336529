"""Make audit events append-only on PostgreSQL: a row trigger refuses every UPDATE and DELETE.

TRUNCATE is deliberately left allowed: Django's ``flush`` (and so pytest-django's teardown of
``transaction=True`` tests) empties every table with one TRUNCATE, and refusing it would break that.
A TRUNCATE needs the table owner's rights, and the hash chain still shows the loss against the
chain head and any earlier export.

SQLite (the embedded default) gets no trigger: its ``flush`` deletes rows with DELETE, so a
trigger there would break the test suite's teardown; the chain still detects tampering.
"""

from __future__ import annotations

from django.db import migrations

CREATE_SQL = """
CREATE OR REPLACE FUNCTION audit_event_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit events are append-only (% refused on %, id %)', TG_OP, TG_TABLE_NAME, OLD.id
        USING HINT = 'Record a new audit event instead of changing or removing one.';
END;
$$;

CREATE TRIGGER audit_event_append_only
    BEFORE UPDATE OR DELETE ON audit_auditevent
    FOR EACH ROW EXECUTE FUNCTION audit_event_refuse_change();
"""

DROP_SQL = """
DROP TRIGGER IF EXISTS audit_event_append_only ON audit_auditevent;
DROP FUNCTION IF EXISTS audit_event_refuse_change();
"""


def install_trigger(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE_SQL, params=None)  # None: the SQL's % signs are not placeholders


def remove_trigger(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP_SQL, params=None)


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_initial")]

    operations = [migrations.RunPython(install_trigger, remove_trigger, elidable=False)]
