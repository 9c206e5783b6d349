"""``aifinops serve``: one FastAPI application for the REST API, the dashboard, ``/metrics`` and OTLP."""
