"""Every place the project patches, or reaches into, a third-party library's internals.

A plain library at the bottom layer: it imports third-party code only, no
package of this project. Each module says what it relies on and why; this one
keeps the version each was written against, and `check_versions` (called at
start-up by core's AppConfig and by `python -m core.daphne`) refuses to run on
any other, so an upgrade is a decision: re-read the patch, then bump the entry.
"""

from __future__ import annotations

from importlib.metadata import version

from django.core.exceptions import ImproperlyConfigured

# Distribution -> the version (or release series: "5.2" is any 5.2.x) the patches were written against.
WRITTEN_FOR = {
    "daphne": "4.2.3",  # patches.daphne replaces three of its methods wholesale, and wraps two more
    # patches.daphne (fixes 3, 4) relies on autobahn (below) raising Disconnected on a send once a close frame
    # has gone and reading closeHandshakeTimeout per connection, and on Twisted's HTTPChannel staying the
    # transport's producer after an upgrade.
    "twisted": "26.10",
    "channels": "4.3",  # patches.channels: AsyncConsumer.dispatch without its database hop; database_to_async
    # patches.django: private attributes of requests and responses; patches.smtp; patches.sqlite: the SQLite
    # backend's transaction methods (_start_transaction_under_autocommit, _commit, _rollback, _close);
    # patches.prepared: how the ORM's iterables use SQLCompiler (execute_sql, as_sql, the state it sets up)
    "django": "5.2",
    "prometheus_client": "0.26",  # patches.prometheus: the multiprocess value class
    "kombu": "5.7",  # patches.kombu: the Redis transport's key layout
    "autobahn": "26.10",  # patches.autobahn: the module-level pformat of autobahn.websocket.protocol
}


def check_versions() -> None:
    """Raise ImproperlyConfigured unless every patched library is at the version its patch was written for."""
    wrong = [
        f"{name} {version(name)} (patched for {expected})"
        for name, expected in WRITTEN_FOR.items()
        if not _matches(version(name), expected)
    ]
    if wrong:
        raise ImproperlyConfigured(
            "patches/ was written for other versions of: " + ", ".join(wrong) + ". Check each patch of "
            "these libraries against the installed version, then update patches.WRITTEN_FOR."
        )


def _matches(installed: str, expected: str) -> bool:
    return installed == expected or installed.startswith(expected + ".")
