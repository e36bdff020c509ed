"""Production: secrets, hosts and the mail server have no defaults, DEBUG is refused, cookies are secure."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

from core.settings.base import *  # noqa: F403
from envconfig import env

SECRET_KEY = env.get_str("SECRET_KEY")
ALLOWED_HOSTS = env.get_list("ALLOWED_HOSTS", [])
if not ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS must be set in the environment.")
if env.get_bool("DEBUG", False):
    raise ImproperlyConfigured("DEBUG=true is refused in production settings.")
DEBUG = False
# No default mail server: base's filemail:// would keep every message in a directory on this
# server and tell nobody. consolemail:// or filemail:///path remain for whoever sets them.
if env.get_str("EMAIL_URL", "") == "":
    raise ImproperlyConfigured(
        "EMAIL_URL must be set in the environment (smtp://host:25, smtp+tls://user:password@host:587, ...): "
        "production settings have no default mail server."
    )

SESSION_COOKIE_SECURE = env.get_bool("SESSION_COOKIE_SECURE", True)
CSRF_COOKIE_SECURE = env.get_bool("CSRF_COOKIE_SECURE", True)
CSRF_TRUSTED_ORIGINS = env.get_list("CSRF_TRUSTED_ORIGINS", [])
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True

# Cookies: never sent over plain HTTP, never readable by scripts (the session),
# and not sent on cross-site subrequests.
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
# TLS usually terminates at a proxy in front of Daphne: it sets X-Forwarded-Proto
# (SECURE_PROXY_SSL_HEADER above) and redirects http to https itself; set
# SECURE_SSL_REDIRECT=true to make Django redirect instead.
SECURE_SSL_REDIRECT = env.get_bool("SECURE_SSL_REDIRECT", False)
SECURE_HSTS_SECONDS = env.get_int("SECURE_HSTS_SECONDS", 365 * 24 * 3600, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.get_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env.get_bool("SECURE_HSTS_PRELOAD", False)
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Deliberate, documented choices rather than oversights: subdomains and the
# preload list are the domain owner's call, and the proxy does the redirect.
SILENCED_SYSTEM_CHECKS = [
    *(["security.W005"] if not SECURE_HSTS_INCLUDE_SUBDOMAINS else []),
    *(["security.W021"] if not SECURE_HSTS_PRELOAD else []),
    *(["security.W008"] if not SECURE_SSL_REDIRECT else []),
]
# Load balancers poll /healthz over plain HTTP inside the network.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
