from __future__ import annotations

from django.apps import AppConfig


class GatewayConfig(AppConfig):
    name = "gateway"
    verbose_name = "WebSocket gateway"

    def ready(self) -> None:
        # Django's idiom: receivers are imported once the models are ready.
        from gateway import subscribers

        subscribers.connect()
