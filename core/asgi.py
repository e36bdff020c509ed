"""ASGI entry point: HTTP goes to Django, WebSockets to the Channels router."""

from __future__ import annotations

from django.core.asgi import get_asgi_application

from envconfig.settings_module import use_settings_module

use_settings_module()
# Django must be set up before anything imports models, hence this order.
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from accounts.websocket import websocket_auth  # noqa: E402
from gateway.admission import HandshakeAdmission  # noqa: E402
from gateway.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        # At most WEBSOCKET_HANDSHAKES_IN_FLIGHT handshakes at once (gateway.admission); then a bearer
        # token, or a session cookie from an allowed Origin (see accounts.websocket).
        "websocket": HandshakeAdmission(websocket_auth(URLRouter(websocket_urlpatterns))),
    }
)
