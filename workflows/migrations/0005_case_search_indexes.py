"""PostgreSQL search behind the case list (workflows.selectors.case_search).

- ``search_vector``: the words of the case's field values, a stored generated column that
  PostgreSQL keeps up to date itself (so it is not a model field), with a GIN index. Stored,
  because computing the vector row by row made a search for a rare word scan for seconds.
- an index for external references by prefix, ignoring case.

SQLite (the embedded default, small data) searches without them.
"""

from django.db import migrations

SEARCH_VECTOR = (
    "ALTER TABLE workflows_case ADD COLUMN IF NOT EXISTS search_vector tsvector GENERATED ALWAYS AS "
    "(jsonb_to_tsvector('simple', fields, '[\"string\", \"numeric\"]')) STORED"
)
SEARCH_INDEX = "CREATE INDEX IF NOT EXISTS case_search_vector ON workflows_case USING GIN (search_vector)"
EXTERNAL_PREFIX = (
    "CREATE INDEX IF NOT EXISTS case_org_external_prefix ON workflows_case "
    "(organization_id, UPPER(external_id) text_pattern_ops)"
)


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(SEARCH_VECTOR)
        schema_editor.execute(SEARCH_INDEX)
        schema_editor.execute(EXTERNAL_PREFIX)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP INDEX IF EXISTS case_org_external_prefix")
        schema_editor.execute("DROP INDEX IF EXISTS case_search_vector")
        schema_editor.execute("ALTER TABLE workflows_case DROP COLUMN IF EXISTS search_vector")


class Migration(migrations.Migration):
    dependencies = [("workflows", "0004_case_list_indexes")]

    operations = [migrations.RunPython(create, drop)]
