"""The notification centre: broadcast notices, and each user's notifications (of finished jobs and notices).

A domain app above tasks: it may import tasks, accounts, uploads and the plain
libraries, never the gateway or the composition root. What the sockets must
hear it sends as notifications.events; it records finished jobs from tasks.events.
"""
