"""PostgreSQL indexes behind the case list's search (workflows.selectors_expert.case_search):
words in field values (a GIN index over the values' text-search vector) and external references
by prefix, ignoring case. SQLite (the embedded default) searches without them."""

from django.db import migrations

FIELD_WORDS = (
    "CREATE INDEX IF NOT EXISTS case_fields_words ON workflows_case USING GIN "
    "(jsonb_to_tsvector('simple', fields, '[\"string\", \"numeric\"]'))"
)
EXTERNAL_PREFIX = (
    "CREATE INDEX IF NOT EXISTS case_org_external_prefix ON workflows_case "
    "(organization_id, UPPER(external_id) text_pattern_ops)"
)


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FIELD_WORDS)
        schema_editor.execute(EXTERNAL_PREFIX)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP INDEX IF EXISTS case_fields_words")
        schema_editor.execute("DROP INDEX IF EXISTS case_org_external_prefix")


class Migration(migrations.Migration):
    dependencies = [("workflows", "0004_case_list_indexes")]

    operations = [migrations.RunPython(create, drop)]
