"""Ways in for people and machines: the CLI now; the API, dashboard and exporter later."""
