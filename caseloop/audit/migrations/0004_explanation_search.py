"""Full-text search over the explanations agents give at each step (``payload->>'explanation'``).

A GIN index on the English text-search vector of the explanation, on PostgreSQL only: the auditors'
search (``caseloop.audit.selectors.audit_event_page``) filters with the very same expression, so a
search among millions of events reads the index, not the table. SQLite (the embedded default) gets
no index and searches with a substring match instead. An index changes nothing in the rows: the
append-only trigger and the hash chain are untouched.
"""

from __future__ import annotations

from django.db import migrations

# Keep in step with caseloop.audit.selectors.EXPLANATION_VECTOR.
CREATE_SQL = """
CREATE INDEX IF NOT EXISTS audit_explanation_fts ON audit_auditevent
USING gin (to_tsvector('english'::regconfig, COALESCE(payload ->> 'explanation', '')))
"""
DROP_SQL = "DROP INDEX IF EXISTS audit_explanation_fts"


def create_index(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE_SQL, params=None)


def drop_index(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP_SQL, params=None)


class Migration(migrations.Migration):
    dependencies = [("audit", "0003_list_indexes")]

    operations = [migrations.RunPython(create_index, drop_index, elidable=False)]
