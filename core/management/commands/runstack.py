"""`manage.py runstack`: the whole service on one machine, for development.

Starts Redis when nothing answers at REDIS_URL, applies migrations, makes a
local admin login, then runs Daphne, a Celery worker, Celery beat and Flower
until Ctrl-C.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from celery_app import app as celery_app
from core import stack
from telemetry import metrics

ADMIN_USERNAME = "admin"


class Command(BaseCommand):
    help = "Run Redis (if needed), Daphne, a Celery worker, Celery beat and Flower together, for local development."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="Address Daphne binds to.")
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--flower-port", type=int, default=int(os.environ.get("FLOWER_PORT", "5555")))
        parser.add_argument("--concurrency", type=int, default=2, help="Celery worker processes.")

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG:
            raise CommandError("runstack is for local development (DEBUG=true); production runs each process alone.")
        processes: list[subprocess.Popen[bytes]] = []
        try:
            self._start(processes, options)
            self._supervise(processes)
        except stack.StackError as exc:
            raise CommandError(str(exc)) from None
        finally:
            stack.stop(list(reversed(processes)))

    def _start(self, processes: list[subprocess.Popen[bytes]], options: dict[str, Any]) -> None:
        var_dir: Path = settings.VAR_DIR
        var_dir.mkdir(parents=True, exist_ok=True)
        os.environ[metrics.MULTIPROC_ENV] = str(metrics.fresh_multiproc_dir(var_dir / "prometheus"))  # for children
        if not stack.redis_answers(settings.REDIS_URL):
            self.stdout.write(f"Nothing answers at {settings.REDIS_URL}: starting a local redis-server.")
            processes.append(stack.start_redis(settings.REDIS_URL, var_dir / "redis"))
        call_command("migrate", interactive=False, verbosity=0)
        password = self._local_admin(var_dir / "local-admin-password")
        flower_auth = os.environ.get("FLOWER_BASIC_AUTH", f"{ADMIN_USERNAME}:{password}")
        host, port, flower_port = options["host"], options["port"], options["flower_port"]
        daphne = subprocess.Popen(stack.daphne_command(host, port))
        processes.append(daphne)
        stack.wait_until(lambda: stack.port_open("127.0.0.1", port), "Daphne", timeout=60, process=daphne)
        flower_env = {**os.environ, "FLOWER_BASIC_AUTH": flower_auth}
        flower = subprocess.Popen(stack.flower_command("127.0.0.1", flower_port), env=flower_env)
        processes.append(flower)
        stack.wait_until(lambda: stack.port_open("127.0.0.1", flower_port), "Flower", timeout=60, process=flower)
        worker = subprocess.Popen(stack.worker_command("worker", options["concurrency"]))
        processes.append(worker)
        stack.wait_until(
            lambda: bool(celery_app.control.ping(timeout=0.5)), "Celery worker", timeout=60, process=worker
        )
        # The periodic reconciler (and housekeeping): one beat for the whole deployment.
        processes.append(subprocess.Popen(stack.beat_command(var_dir / "celerybeat-schedule")))
        self._banner(host, port, flower_port, password, flower_auth)

    def _local_admin(self, password_file: Path) -> str:
        """A staff login for this checkout; its password is kept in var/ and printed at start."""
        if password_file.exists():
            password = password_file.read_text().strip()
        else:
            password = secrets.token_urlsafe(12)
            password_file.write_text(password + "\n")
            password_file.chmod(0o600)
        user, _ = User.objects.get_or_create(username=ADMIN_USERNAME, defaults={"is_staff": True, "is_superuser": True})
        if not user.check_password(password):
            user.set_password(password)
            user.save()
        return password

    def _banner(self, host: str, port: int, flower_port: int, password: str, flower_auth: str) -> None:
        shown = "localhost" if host in ("0.0.0.0", "127.0.0.1") else host  # noqa: S104
        lines = [
            "",
            "The job service is running. Ctrl-C stops everything.",
            f"  Dashboard  http://{shown}:{port}/",
            f"  WebSocket  ws://{shown}:{port}/ws/jobs/",
            f"  Admin      http://{shown}:{port}/admin/",
            f"  Flower     http://127.0.0.1:{flower_port}/  (basic auth {flower_auth.split(':', 1)[0]} / "
            f"{flower_auth.split(':', 1)[1] if ':' in flower_auth else ''})",
            f"  Login      {ADMIN_USERNAME} / {password}",
            f"  Mail       written to {settings.EMAIL_FILE_PATH}"
            if settings.EMAIL_BACKEND.endswith("filebased.EmailBackend")
            else f"  Mail       {settings.EMAIL_BACKEND}",
            "",
        ]
        self.stdout.write("\n".join(lines))
        self.stdout.flush()

    def _supervise(self, processes: list[subprocess.Popen[bytes]]) -> None:
        """Run until Ctrl-C / SIGTERM, or until a process dies (then stop the rest and fail)."""
        stopping = False

        def request_stop(signum: int, frame: object) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        while not stopping:
            for process in processes:
                if process.poll() is not None:
                    raise CommandError(f"{process.args!r:.100} exited with code {process.returncode}.")
            time.sleep(0.5)
        self.stdout.write("Stopping...")
