"""Django's SQLite backend whose write transactions take turns on a file lock (see base.py)."""
