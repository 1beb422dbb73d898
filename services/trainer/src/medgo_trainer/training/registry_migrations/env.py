"""Alembic environment of the checkpoint registry: runs on the connection that
`registry_db` hands over (its engine, schema and SQLite begin mode already set)."""

from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
