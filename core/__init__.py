"""The composition root: settings, the ASGI router, URLs, health, the run command, and the Celery app's loading.

The top layer: it may import every package of the project; nothing imports it
(settings are read through django.conf.settings).
"""
