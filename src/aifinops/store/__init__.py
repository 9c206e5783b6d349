"""The embedded analytical store: DuckDB file, versioned schema, atomic ingest batches."""
