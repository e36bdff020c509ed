"""Settings are split by environment: base (shared), local, test, production.

Every value comes from the environment through envconfig.env; DJANGO_SETTINGS_MODULE
chooses the module (manage.py, ASGI and Celery default to core.settings.local).
"""
