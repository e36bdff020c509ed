"""Jobs: the Job model and its state machine (services), job kinds and their registry, the Celery tasks
that run them, progress, email delivery, liveness, the reconciler and housekeeping.

A domain app: it may import accounts, uploads and the plain libraries (telemetry,
patches, envconfig), never the notification centre, the gateway or the
composition root. What those must learn it sends as domain events (tasks.events).
"""
