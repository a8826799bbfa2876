"""Alembic environment: runs migrations on the connection handed over by ``migrate()``."""

from alembic import context

from airegistry.storage.metadata.tables import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
