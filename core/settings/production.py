"""Production: secrets and hosts have no defaults, DEBUG is refused, cookies are secure."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

from core import env
from core.settings.base import *  # noqa: F403

SECRET_KEY = env.get_str("SECRET_KEY")
ALLOWED_HOSTS = env.get_list("ALLOWED_HOSTS", [])
if not ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS must be set in the environment.")
if env.get_bool("DEBUG", False):
    raise ImproperlyConfigured("DEBUG=true is refused in production settings.")
DEBUG = False

SESSION_COOKIE_SECURE = env.get_bool("SESSION_COOKIE_SECURE", True)
CSRF_COOKIE_SECURE = env.get_bool("CSRF_COOKIE_SECURE", True)
CSRF_TRUSTED_ORIGINS = env.get_list("CSRF_TRUSTED_ORIGINS", [])
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
