"""Build stages: fetch, checkpoint, engine, repository. Each: inputs → key → artifact."""
