"""jobsctl: the command-line client of the job service.

It speaks only the documented interface (shared/protocol.md over /ws/jobs/,
and POST /api/uploads/), so it runs anywhere Python, `websockets` and `tqdm`
are installed: `python -m jobsctl --help`. See docs/operations.md.
"""
