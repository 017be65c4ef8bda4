"""SQLAlchemy tables, the database handle, migrations and the revision counter."""
