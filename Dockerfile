# syntax=docker/dockerfile:1
# One image for every process of the service (web, worker, flower, migrate);
# docker-compose.yml picks the command. The default command is the web server.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=core.settings.production \
    VAR_DIR=/app/var

# Unprivileged runtime user; the code stays root-owned so the app cannot rewrite it.
RUN groupadd --system --gid 1000 app \
 && useradd --system --uid 1000 --gid app --create-home --home-dir /home/app --shell /usr/sbin/nologin app

WORKDIR /app

# Dependencies first, so code changes do not invalidate this layer.
# psycopg[binary] ships its own libpq: no compiler or system packages needed.
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt

COPY . .

# Whitenoise's CompressedManifestStaticFilesStorage needs the manifest at run
# time. The dummy SECRET_KEY/ALLOWED_HOSTS/EMAIL_URL exist only for this RUN line.
RUN SECRET_KEY=build ALLOWED_HOSTS=localhost EMAIL_URL=consolemail:// python manage.py collectstatic --noinput \
 && mkdir -p /app/var/media /app/var/prometheus \
 && chown -R app:app /app/var

USER app

EXPOSE 8000

# Needs nothing beyond Python. Django answers 400 to a Host outside
# ALLOWED_HOSTS, so send the first concrete entry (a leading dot is a domain
# wildcard; "*" falls back to localhost).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request as r; h = next((x.strip().lstrip('.') for x in os.environ.get('ALLOWED_HOSTS', '').split(',') if x.strip() and '*' not in x), 'localhost'); r.urlopen(r.Request('http://127.0.0.1:8000/accounts/login/', headers={'Host': h}), timeout=4)"]

# The web server as make run and the tests start it (core/daphne.py adds the frame
# limits, keepalive pings and the application, and installs Daphne's fixes), behind a proxy.
CMD ["python", "-m", "core.daphne", "--bind", "0.0.0.0", "--port", "8000", "--proxy-headers"]
