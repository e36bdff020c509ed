"""GET /healthz: is this process able to serve? For load balancers and orchestrators.

200 `{"status": "ok", "checks": {...}}` when the database and Redis answer and
a Celery worker answered a ping recently; 503 `{"status": "fail", "failed":
[...], "checks": {...}}` naming what failed otherwise.

Polled every few seconds by every load balancer, so it must stay cheap:

* each check has a short timeout (HEALTH_CHECK_TIMEOUT, 1 s);
* the worker check (a Celery broadcast ping, which can wait its whole timeout)
  is cached in Redis for HEALTH_WORKERS_CACHE_SECONDS (15 s), shared by every
  Daphne process: at most one ping per interval for the whole deployment,
  give or take a race;
* the view is async and runs the checks in worker threads, so a slow check
  never holds the thread Django runs its sync views in (logins, uploads).

Failures show the exception's class only (the endpoint is public); the log has
the details, at most once a minute per check.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import redis
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from celery_app import app as celery_app

logger = logging.getLogger(__name__)

WORKERS_CACHE_KEY = "jobs:health:workers"
LOG_EVERY_SECONDS = 60.0
Result = dict[str, Any]
_last_logged: dict[str, float] = {}


@require_http_methods(["GET", "HEAD"])
async def healthz(request: HttpRequest) -> JsonResponse:
    timeout = settings.HEALTH_CHECK_TIMEOUT
    database, redis_check = await asyncio.gather(
        _bounded("database", sync_to_async(check_database), timeout),
        _bounded("redis", lambda: asyncio.to_thread(check_redis, settings.REDIS_URL, timeout), timeout),
    )
    workers = await _bounded("workers", lambda: asyncio.to_thread(check_workers, redis_check["ok"]), 2 * timeout)
    checks = {"database": database, "redis": redis_check, "workers": workers}
    failed = [name for name, result in checks.items() if not result["ok"]]
    body: Result = {"status": "fail" if failed else "ok", "checks": checks}
    if failed:
        body["failed"] = failed
    response = JsonResponse(body, status=503 if failed else 200)
    response["Cache-Control"] = "no-store"
    return response


async def _bounded(name: str, check: Callable[[], Any], seconds: float) -> Result:
    """Run a check, turning a hang past `seconds` (plus a margin) into a failure rather than a slow answer."""
    try:
        async with asyncio.timeout(seconds + 0.5):
            result: Result = await check()
    except TimeoutError as exc:
        return _failed(name, exc)
    return result


def check_database() -> Result:
    started = time.perf_counter()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:
        return _failed("database", exc)
    return {"ok": True, "ms": _ms_since(started)}


def check_redis(url: str, timeout: float) -> Result:
    started = time.perf_counter()
    try:
        client = _redis(url, timeout)
        try:
            client.ping()
        finally:
            client.close()
    except redis.RedisError as exc:
        return _failed("redis", exc)
    return {"ok": True, "ms": _ms_since(started)}


def check_workers(redis_ok: bool) -> Result:
    """Did a worker answer a ping in the last HEALTH_WORKERS_CACHE_SECONDS? Pings when nobody asked lately."""
    if not redis_ok:
        # The ping travels through Redis: without it, Celery would retry its connection for a long time.
        return {"ok": False, "error": "not checked: Redis does not answer"}
    timeout = settings.HEALTH_CHECK_TIMEOUT
    try:
        client = _redis(settings.REDIS_URL, timeout)
        try:
            cached = client.get(WORKERS_CACHE_KEY)
            if cached is not None:
                return {**json.loads(cached), "cached": True}
            result = _ping(timeout)
            client.set(WORKERS_CACHE_KEY, json.dumps(result), ex=settings.HEALTH_WORKERS_CACHE_SECONDS)
        finally:
            client.close()
    except redis.RedisError as exc:
        return _failed("workers", exc)
    return {**result, "cached": False}


def ping_workers(timeout: float) -> list[str]:
    """Names of the workers that answered; `limit=1` returns as soon as one has, instead of waiting out the timeout."""
    replies = celery_app.control.ping(timeout=timeout, limit=1) or []
    return sorted(name for reply in replies for name in reply)


def _ping(timeout: float) -> Result:
    started = time.perf_counter()
    try:
        names = ping_workers(timeout)
    except Exception as exc:
        return _failed("workers", exc)
    result: Result = {"ok": bool(names), "replied": names, "ms": _ms_since(started)}
    result["checked_at"] = timezone.now().isoformat()
    if not names:
        result["error"] = f"no worker answered a ping within {timeout} s"
        _log("workers", result["error"])
    return result


def _redis(url: str, timeout: float) -> redis.Redis:
    return redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)


def _failed(name: str, exc: BaseException) -> Result:
    _log(name, f"{type(exc).__name__}: {exc}")
    return {"ok": False, "error": type(exc).__name__}


def _log(name: str, text: str) -> None:
    """A warning per failing check, at most once a minute: a load balancer polls while something is down."""
    now = time.monotonic()
    if now - _last_logged.get(name, -LOG_EVERY_SECONDS) >= LOG_EVERY_SECONDS:
        _last_logged[name] = now
        logger.warning("health check %s failed: %s", name, text, extra={"event": "health.failed", "check": name})


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
