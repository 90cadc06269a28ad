"""The `threadbot` command: the composition root. `main` parses and dispatches; `knowledge` holds
ingest, index and search; `doctor` and `conversations` are the operator's tools."""
