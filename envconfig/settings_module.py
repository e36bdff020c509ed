"""DJANGO_SETTINGS_MODULE, checked before Django reads it.

Django imports the module on first use, so a typo surfaces deep inside
`django.setup()` (or a Celery worker's boot) as a bare ModuleNotFoundError that
names neither the variable nor the fix. Every entry point (manage.py,
celery_app.py, core/asgi.py) calls `use_settings_module` first instead.
"""

from __future__ import annotations

import importlib.util
import os

from django.core.exceptions import ImproperlyConfigured

NAME = "DJANGO_SETTINGS_MODULE"
DEFAULT = "core.settings.local"
CHOICES = "core.settings.local, core.settings.production or core.settings.test"


def use_settings_module(default: str = DEFAULT) -> str:
    """Default DJANGO_SETTINGS_MODULE to `default` when unset; raise ImproperlyConfigured if it names no module."""
    value = os.environ.setdefault(NAME, default)
    if not _importable(value):
        raise ImproperlyConfigured(
            f"{NAME}={value!r} is not a settings module that can be imported; use a dotted module path: {CHOICES}."
        )
    return value


def _importable(name: str) -> bool:
    """Does `name` name a module? Finds it without running it, so an error inside a real settings module still shows."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a missing parent package; an empty or relative name
        return False
