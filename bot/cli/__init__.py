"""The `airlock` command line: serve, worker, run, approvals, audit, memory, config."""
