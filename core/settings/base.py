"""Settings shared by every environment. Values come from the environment (envconfig.env)."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import django_stubs_ext
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from envconfig import env

# Lets the code write ModelAdmin[Job] and other generics that django-stubs types.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = Path(env.get_str("VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env.get_bool("DEBUG", False)
ALLOWED_HOSTS = env.get_list("ALLOWED_HOSTS", [])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "channels",
    # Lowest layer first (README, "Architecture"); import-linter keeps the imports one way.
    "accounts",
    "uploads",
    "tasks",
    "reports",
    "schedules",
    "notifications",
    "gateway",
    "core",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "core.middleware.content_security_policy",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "accounts.middleware.BearerTokenMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "core.urls"
ASGI_APPLICATION = "core.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]


def _database(url_default: str) -> dict[str, Any]:
    config = env.get_database("DATABASE_URL", url_default)
    if config["ENGINE"] == "django.db.backends.sqlite3":
        # Daphne, the worker and Flower share one file: WAL lets readers run beside
        # the writer, and IMMEDIATE takes the write lock at BEGIN, so two processes
        # never deadlock upgrading a read lock inside a transition.
        config["ENGINE"] = "patches.sqlite"  # writers take turns on a file lock (patches/sqlite/base.py)
        config["OPTIONS"] = {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    # Persistent connections, SQLite included: Daphne runs all its ORM work on
    # one thread, and a new connection per call (CONN_MAX_AGE=0) made each
    # call cost 1.2 ms instead of 0.3 ms on SQLite here, more on PostgreSQL.
    config["CONN_MAX_AGE"] = env.get_int("DATABASE_CONN_MAX_AGE", 60, minimum=0)
    config["CONN_HEALTH_CHECKS"] = True
    if config["ENGINE"] == "django.db.backends.postgresql":
        _end_sessions_idle_in_a_transaction(config)
    return config


def _end_sessions_idle_in_a_transaction(config: dict[str, Any]) -> None:
    """A frozen process (SIGSTOP, a paused VM) inside one of its short transactions keeps its rows locked:
    the server ends its session after this long idle, so the reconciler can requeue its job
    (docs/operations.md, "A frozen worker"). The service never waits on anything inside a transaction."""
    seconds = env.get_float("DATABASE_IDLE_IN_TRANSACTION_SECONDS", 60.0, minimum=0.0)
    if seconds:
        options = config.setdefault("OPTIONS", {})
        flag = f"-c idle_in_transaction_session_timeout={round(seconds * 1000)}"
        options["options"] = f"{options.get('options', '')} {flag}".strip()


DATABASES = {"default": _database(f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
# Threads (each with its own connection) on which a Daphne process runs its sockets' database calls
# (patches.channels.database_to_async), instead of Channels' one thread.
DATABASE_THREADS_PER_PROCESS = env.get_int("DATABASE_THREADS_PER_PROCESS", 4, minimum=1)
# Handshakes a Daphne process works on at once; more wait their turn, then are closed with 4013 (try again later).
WEBSOCKET_HANDSHAKES_IN_FLIGHT = env.get_int("WEBSOCKET_HANDSHAKES_IN_FLIGHT", 100, minimum=1)
# How long one more waits for its turn before that close (Daphne drops a handshake not accepted in 5 s).
WEBSOCKET_HANDSHAKE_WAIT_SECONDS = env.get_float("WEBSOCKET_HANDSHAKE_WAIT_SECONDS", 2.0, minimum=0.0, maximum=4.0)
# What Daphne holds for a socket whose client does not read; past it the socket is closed with 4012 and the
# client resyncs from hello (patches/daphne.py, fix 3). Large enough for a hello and a burst of events.
WEBSOCKET_SEND_BUFFER_BYTES = env.get_int("WEBSOCKET_SEND_BUFFER_BYTES", 4 * 1024 * 1024, minimum=256 * 1024)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "core.storage.StaticFilesStorage"},
}

# --- Redis: one URL for the Celery broker; the channel layer may be sharded ---
REDIS_URL = env.get_redis_url("REDIS_URL", "redis://127.0.0.1:6379/0")
# The channel layer's Redis servers, comma-separated (default: REDIS_URL alone).
# With several, channels_redis shards channels and groups over them by a hash of
# the name; every Daphne and worker must list the same servers in the same order.
CHANNELS_REDIS_URLS = env.get_redis_urls("CHANNELS_REDIS_URLS", [REDIS_URL])
# "core" (channels_redis.core, Redis lists with a per-channel capacity) or
# "pubsub" (channels_redis.pubsub, Redis PUBLISH); docs/benchmarks.md says why
# the default is what it is.
CHANNEL_LAYER = env.get_choice("CHANNEL_LAYER", "pubsub", ("core", "pubsub"))


def _channel_layer(kind: str, urls: list[str]) -> dict[str, Any]:
    # After Redis restarts, pooled connections are dead: ping one that sat idle
    # before using it, and retry a command once on a broken connection (for the
    # pubsub layer's subscriber connection, the retry is what reconnects and
    # resubscribes), so sockets and publishers carry on without a restart of Daphne.
    hosts = [
        {"address": url, "health_check_interval": 5, "retry_on_error": [RedisConnectionError, RedisTimeoutError]}
        for url in urls
    ]
    prefix = env.get_str("CHANNELS_PREFIX", "asgi")
    if kind == "pubsub":
        return {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": hosts, "prefix": prefix},
        }
    return {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            "hosts": hosts,
            "prefix": prefix,
            # What may queue before the layer drops new messages, so a stuck
            # client cannot grow Redis without bound. channels_redis counts it per
            # Daphne process (one key holds a process's channels), not per socket.
            "capacity": env.get_int("CHANNELS_CAPACITY", 1000, minimum=10),
            "expiry": 60,
        },
    }


CHANNEL_LAYERS = {"default": _channel_layer(CHANNEL_LAYER, CHANNELS_REDIS_URLS)}

# --- Celery (read by celery_app.py with the CELERY_ namespace) ---------------
# The broker: REDIS_URL unless CELERY_BROKER_URL names another Redis or a RabbitMQ (amqp://). The channel
# layer, counters, rate limits and liveness data stay on Redis whatever it is. docs/operations.md, "Brokers".
CELERY_BROKER_URL = env.get_broker_url("CELERY_BROKER_URL", REDIS_URL)
BROKER_IS_RABBITMQ = CELERY_BROKER_URL.startswith(("amqp://", "amqps://"))
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
# The job row holds the result; a result backend would only duplicate it.
CELERY_TASK_IGNORE_RESULT = True
# Kinds name their queue (tasks.kinds); this one takes every other task. A worker
# started without -Q serves every queue (declared at start-up by tasks.tasks).
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Redis hands an unacknowledged task to another worker after this long, so every
# task's hard time limit must end before it: each job kind's is checked when it
# registers (tasks.kinds), the periodic tasks' are minutes. Time limits are the
# kinds' own; there is no global one.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env.get_int("BROKER_VISIBILITY_TIMEOUT", 41 * 60, minimum=120),
}
# RabbitMQ has no visibility timeout: it closes the channel of a consumer that holds a delivery unacknowledged
# for longer than the server's `consumer_timeout` (rabbitmq.conf; 30 minutes by default), and gives the task to
# another worker while the first still runs it. The client cannot read the server's value, so operators state
# it here; every kind's hard limit must end before it, as before the visibility timeout on Redis.
BROKER_ACK_TIMEOUT_SECONDS = (
    env.get_int("RABBITMQ_CONSUMER_TIMEOUT", 30 * 60, minimum=120)
    if BROKER_IS_RABBITMQ
    else CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]
)
# A RabbitMQ queue orders by priority only if declared with x-max-priority (Celery adds it to every queue
# it declares); higher is first there, the reverse of Redis' steps (tasks.broker.priority_of). Tasks sent
# with no priority (the periodic ones) go first, as they do on Redis.
RABBITMQ_MAX_PRIORITY = 9
if BROKER_IS_RABBITMQ:
    CELERY_TASK_QUEUE_MAX_PRIORITY = CELERY_TASK_DEFAULT_PRIORITY = RABBITMQ_MAX_PRIORITY
    # A send returns once RabbitMQ has the message (a publisher confirm), as an LPUSH does on Redis: without
    # it, a message dropped on the way (its channel closed by an error) would raise nothing, and the job would
    # wait for the reconciler's next pass instead of logging the failure at once.
    CELERY_BROKER_TRANSPORT_OPTIONS["confirm_publish"] = True
# Celery's task events (what Flower shows) cost a job ~2 ms and three PUBLISHes: off unless asked for.
# Flower turns them on in every worker it watches, by itself, every few seconds while it runs (its
# `enable_events` option), so a worker watched by Flower sends them and an unwatched one does not.
# CELERY_TASK_EVENTS=true sends them always, as `--task-events` did, with the web's task-sent events.
CELERY_WORKER_SEND_TASK_EVENTS = env.get_bool("CELERY_TASK_EVENTS", False)
CELERY_TASK_SEND_SENT_EVENT = CELERY_WORKER_SEND_TASK_EVENTS
CELERY_TASK_TRACK_STARTED = True
# Celery's Django fix-up closes the database connections around every task unless this is set; it then
# closes them every this many tasks, and tasks.tasks.reuse_connections closes old or broken ones.
CELERY_DB_REUSE_MAX = 1000
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Periodic tasks, run by `celery -A celery_app beat` (runstack and docker-compose start it).
JOBS_RECONCILE_SECONDS = env.get_float("JOBS_RECONCILE_SECONDS", 30.0, minimum=1.0)
CELERY_BEAT_SCHEDULE: dict[str, dict[str, object]] = {
    "reconcile-jobs": {"task": "jobs.reconcile", "schedule": JOBS_RECONCILE_SECONDS},
    "housekeeping": {"task": "jobs.housekeeping", "schedule": crontab(hour=3, minute=30)},  # daily, UTC
}
# The periodic tasks (autodiscovery loads each app's `tasks` module only).
CELERY_IMPORTS = ["tasks.periodic"]
# Beat also fires the users' schedules (schedules/beat.py), in its own process: a due
# time is on time however busy the workers are.
CELERY_BEAT_SCHEDULER = "schedules.beat:Scheduler"
JOBS_SCHEDULER_TICK_SECONDS = env.get_float("JOBS_SCHEDULER_TICK_SECONDS", 1.0, minimum=0.05, maximum=60.0)
JOBS_SCHEDULES_PER_USER = env.get_int("JOBS_SCHEDULES_PER_USER", 100, minimum=1)

# --- Email --------------------------------------------------------------------
# Locally, mail goes to files under var/mail (one file per connection, so one per job) so a
# developer can read what was sent with no server; production sets EMAIL_URL.
_EMAIL = env.get_email("EMAIL_URL", f"filemail://{VAR_DIR / 'mail'}")
EMAIL_BACKEND = _EMAIL["EMAIL_BACKEND"]
EMAIL_FILE_PATH = _EMAIL.get("EMAIL_FILE_PATH", str(VAR_DIR / "mail"))
EMAIL_HOST = _EMAIL.get("EMAIL_HOST", "localhost")
EMAIL_PORT = _EMAIL.get("EMAIL_PORT", 25)
EMAIL_HOST_USER = _EMAIL.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = _EMAIL.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = _EMAIL.get("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = _EMAIL.get("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = env.get_int("EMAIL_TIMEOUT", 30, minimum=1)
# The mail provider's limit over every worker: at most EMAIL_RATE_PER_MINUTE messages in any minute (0: none),
# or EMAIL_RATE_LIMIT for another window, in the `limits` library's notation ("14/second", "2000/day").
EMAIL_RATE_PER_MINUTE = env.get_int("EMAIL_RATE_PER_MINUTE", 0, minimum=0)
EMAIL_RATE_LIMIT = env.get_rate("EMAIL_RATE_LIMIT")
if EMAIL_RATE_LIMIT and EMAIL_RATE_PER_MINUTE:
    raise ImproperlyConfigured("Set EMAIL_RATE_PER_MINUTE or EMAIL_RATE_LIMIT, not both.")
DEFAULT_FROM_EMAIL = env.get_str("DEFAULT_FROM_EMAIL", "jobs@localhost")

# --- Jobs ---------------------------------------------------------------------
# Progress frames per job are coalesced to at most one per interval (seconds).
JOBS_PROGRESS_INTERVAL = env.get_float("JOBS_PROGRESS_INTERVAL", 0.1, minimum=0.0, maximum=60.0)
# A batch's progress (its counters) goes out at most once per interval from each process that moves
# its children (tasks/batches.py), however many children it has.
JOBS_BATCH_PROGRESS_INTERVAL = env.get_float("JOBS_BATCH_PROGRESS_INTERVAL", 0.5, minimum=0.05, maximum=60.0)
# How many finished jobs the hello snapshot carries beside the unfinished ones.
JOBS_SNAPSHOT_FINISHED = env.get_int("JOBS_SNAPSHOT_FINISHED", 20, minimum=20, maximum=500)
# Reliability (tasks/liveness.py, tasks/reconciler.py): a job whose process died
# this many times is failed with worker_lost; a running job beats every
# HEARTBEAT seconds and counts as dead after LEASE seconds without a beat (when
# its host cannot be asked directly); a queued job with no task in the broker
# for REQUEUE_AFTER seconds is sent again.
JOBS_MAX_DELIVERIES = env.get_int("JOBS_MAX_DELIVERIES", 3, minimum=1)
JOBS_HEARTBEAT_SECONDS = env.get_float("JOBS_HEARTBEAT_SECONDS", 10.0, minimum=0.1)
JOBS_LEASE_SECONDS = env.get_float("JOBS_LEASE_SECONDS", 3 * JOBS_HEARTBEAT_SECONDS, minimum=0.3)
JOBS_REQUEUE_AFTER_SECONDS = env.get_float("JOBS_REQUEUE_AFTER_SECONDS", 30.0, minimum=0.1)
# How long the reconciler waits for a job's row lock before it leaves that job for its next pass
# (PostgreSQL): a frozen worker's locked row must not stop it repairing every other job.
JOBS_RECONCILE_LOCK_WAIT_SECONDS = env.get_float("JOBS_RECONCILE_LOCK_WAIT_SECONDS", 5.0, minimum=0.01)
# How long a worker keeps trying to write a finished run's outcome while the database is unreachable
# (tasks/runner.py): until then its job stays running, held by a process that lives on.
JOBS_OUTCOME_RETRY_SECONDS = env.get_float("JOBS_OUTCOME_RETRY_SECONDS", 300.0, minimum=0.0)
# The host a worker names in the jobs it runs ("host:pid"). A process that shares it is asked by pid, any
# other waits out the lease: processes whose pids another cannot see (containers sharing the machine's
# hostname, as with host networking) need names of their own.
JOBS_WORKER_HOST = env.get_str("JOBS_WORKER_HOST", socket.gethostname())
if JOBS_LEASE_SECONDS <= JOBS_HEARTBEAT_SECONDS:
    raise ImproperlyConfigured("JOBS_LEASE_SECONDS must be longer than JOBS_HEARTBEAT_SECONDS.")
# Limits (tasks/limits.py): at most N running jobs of a kind over the whole cluster
# ("file.process=4,email.send=2"; a kind not named has none), and per user (0: none).
# A job over a limit waits queued, holding no worker slot, until one frees.
JOBS_CONCURRENCY = env.get_limits("JOBS_CONCURRENCY")
JOBS_CONCURRENCY_PER_USER = env.get_int("JOBS_CONCURRENCY_PER_USER", 0, minimum=0)
# Seconds the publisher waits on Redis before dropping an event (the DB keeps the state).
PUBLISH_TIMEOUT = env.get_float("PUBLISH_TIMEOUT", 2.0, minimum=0.05)
# How often each Daphne process checks that the channel layer's Redis servers
# neither restarted nor went away; if one did, its sockets resync (transport/watch.py).
LAYER_WATCH_SECONDS = env.get_float("LAYER_WATCH_SECONDS", 1.0, minimum=0.05)

# How often the operations view's numbers are computed (once per Daphne process, for every staff tab).
OPS_INTERVAL_SECONDS = env.get_float("OPS_INTERVAL_SECONDS", 2.0, minimum=0.1)

# --- Abuse limits (gateway/throttle.py) ----------------------------------------
THROTTLE_REDIS_URL = env.get_redis_url("THROTTLE_REDIS_URL", REDIS_URL)
RATE_LIMIT_SUBMITS_PER_MINUTE = env.get_int("RATE_LIMIT_SUBMITS_PER_MINUTE", 30, minimum=1)
RATE_LIMIT_MESSAGES_PER_SECOND = env.get_int("RATE_LIMIT_MESSAGES_PER_SECOND", 20, minimum=1)
RATE_LIMIT_CONNECTIONS_PER_USER = env.get_int("RATE_LIMIT_CONNECTIONS_PER_USER", 20, minimum=1)
# rate_limited answers a connection may get within a minute before it is closed with 4008.
RATE_LIMIT_STRIKES = env.get_int("RATE_LIMIT_STRIKES", 10, minimum=1)
JOBS_MAX_ACTIVE_PER_USER = env.get_int("JOBS_MAX_ACTIVE_PER_USER", 100, minimum=1)
# How often an open socket re-checks its session or token (logout and
# deactivation also close sockets at once, through the channel layer).
AUTH_RECHECK_SECONDS = env.get_float("AUTH_RECHECK_SECONDS", 15.0, minimum=0.5)
CONNECTION_STALE_SECONDS = 4 * AUTH_RECHECK_SECONDS

# --- Uploads (uploads/, the file.process kind) -----------------------------------
# Stored files live under MEDIA_ROOT/uploads/<yyyy>/<mm>/<uuid>; Daphne and the
# workers must see the same directory. Never served by Django.
MEDIA_ROOT = Path(env.get_str("MEDIA_ROOT", str(VAR_DIR / "media")))
# Largest file POST /api/uploads/ accepts, in bytes (100 MiB).
UPLOAD_MAX_BYTES = env.get_int("UPLOAD_MAX_BYTES", 100 * 1024 * 1024, minimum=1)

FLOWER_URL = env.get_str("FLOWER_URL", "")

# --- Operations (docs/operations.md) --------------------------------------------
# Finished jobs, and uploads no unfinished job names, are deleted after this many days (tasks/housekeeping.py).
JOBS_RETENTION_DAYS = env.get_int("JOBS_RETENTION_DAYS", 30, minimum=1)
# /healthz: the timeout of each check, and how long a worker ping's answer is reused.
HEALTH_CHECK_TIMEOUT = env.get_float("HEALTH_CHECK_TIMEOUT", 1.0, minimum=0.1, maximum=10.0)
HEALTH_WORKERS_CACHE_SECONDS = env.get_int("HEALTH_WORKERS_CACHE_SECONDS", 15, minimum=1)
# /metrics answers `Authorization: Bearer <METRICS_TOKEN>` (Prometheus) or a staff session; empty: staff only.
METRICS_TOKEN = env.get_str("METRICS_TOKEN", "")
if METRICS_TOKEN and len(METRICS_TOKEN) < 32:
    raise ImproperlyConfigured("METRICS_TOKEN must be at least 32 characters (e.g. `openssl rand -hex 32`).")

LOG_LEVEL = env.get_str("LOG_LEVEL", "INFO").upper()
# plain: one readable line per record; json: one JSON object per line (telemetry/logging.py).
LOG_FORMAT = env.get_str("LOG_FORMAT", "plain").lower()
if LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT={LOG_FORMAT!r} is not one of plain, json.")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "telemetry.logging.JsonFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"django.channels.server": {"level": "WARNING"}},
}
