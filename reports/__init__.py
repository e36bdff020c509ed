"""Reports: job kinds that export what the service knows, written only against the public kind API (tasks.kinds).

A domain app above tasks, and the example of docs/kinds.md: it may import tasks
and the plain libraries; nothing but the composition root imports it.
"""
