"""Open-loop load tests and capacity curves (import as `sparse24.loadtest`)."""
