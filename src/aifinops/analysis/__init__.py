"""Analyses are ibis expressions over the store's tables: they run on DuckDB here and unchanged on
another ibis backend (e.g. PySpark) when the data outgrows one machine. No Python loops over rows."""
