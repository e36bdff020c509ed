"""`python -m core.daphne --bind HOST --port PORT [Daphne options]`: the web server, as every deployment runs it.

The one source of Daphne's command line: `make run` and the tests (through
core.stack) and the Dockerfile all start this module. It checks the versions
of the patched libraries, installs the Daphne fixes (patches.daphne), and adds
the service's standard options that the caller did not give:

* frames up to DAPHNE_MAX_MESSAGE_BYTES: frames between the protocol's 64 KiB
  and this reach the consumer, which closes with 4009 as the protocol says;
  larger ones are dropped by Daphne without reaching Python;
* keepalive pings every DAPHNE_PING_INTERVAL seconds (20), and a peer that has
  not answered for DAPHNE_PING_TIMEOUT (30) is dropped, leaving its groups;
* the application, core.asgi:application (`--app MODULE:ATTRIBUTE` serves
  another one, as the benchmarks' bare Channels app).
"""

from __future__ import annotations

import sys

from daphne.cli import CommandLineInterface

import patches
import patches.autobahn
import patches.daphne
from envconfig import env

DAPHNE_MAX_MESSAGE_BYTES = 128 * 1024
APPLICATION = "core.asgi:application"


def standard_options() -> dict[str, str]:
    return {
        "--websocket-max-message-size": str(DAPHNE_MAX_MESSAGE_BYTES),
        "--websocket-max-frame-size": str(DAPHNE_MAX_MESSAGE_BYTES),
        "--ping-interval": str(env.get_int("DAPHNE_PING_INTERVAL", 20, minimum=1)),
        "--ping-timeout": str(env.get_int("DAPHNE_PING_TIMEOUT", 30, minimum=1)),
    }


def arguments(given: list[str]) -> list[str]:
    """Daphne's arguments: the standard options `given` lacks, then `given`, then the application."""
    given, application = _application(given)
    named = {argument.split("=", 1)[0] for argument in given if argument.startswith("--")}
    added = [part for option, value in standard_options().items() if option not in named for part in (option, value)]
    return [*added, *given, application]


def _application(given: list[str]) -> tuple[list[str], str]:
    """`given` without `--app X`, and X (or the service's application)."""
    if "--app" not in given:
        return given, APPLICATION
    at = given.index("--app")
    return given[:at] + given[at + 2 :], given[at + 1]


def main() -> None:
    patches.check_versions()
    patches.daphne.apply()
    patches.autobahn.apply()
    sys.argv = [sys.argv[0], *arguments(sys.argv[1:])]
    CommandLineInterface.entrypoint()


if __name__ == "__main__":
    main()
