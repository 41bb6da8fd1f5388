"""Metadata storage: SQL schema, migrations and the queries behind every endpoint."""
