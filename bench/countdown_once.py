"""Run one demo.countdown against a running service and count the frames the client receives.

    .venv/bin/python -m bench.countdown_once --password "$(cat var/local-admin-password)" --steps 1000

Prints the frames by type and the job's run time (started_at to finished_at, from
the server) beside the wall time the client saw from submit to the final event.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import time
import uuid
from datetime import datetime

from websockets.asyncio.client import connect

from tests.integration.client import login


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def run(args: argparse.Namespace) -> None:
    cookie = await asyncio.to_thread(login, args.url, args.user, args.password)
    ws_url = args.url.replace("http", "ws", 1) + "/ws/jobs/"
    async with connect(ws_url, additional_headers={"Cookie": cookie, "Origin": args.url}) as socket:
        await socket.recv()  # hello
        params = {"steps": args.steps, "interval_ms": args.interval_ms}
        submit = {"type": "job.submit", "request_id": uuid.uuid4().hex, "kind": "demo.countdown", "params": params}
        started = time.perf_counter()
        await socket.send(json.dumps(submit))
        frames: collections.Counter[str] = collections.Counter()
        while True:
            message = json.loads(await socket.recv())
            frames[message["type"]] += 1
            if message["type"] in {"job.succeeded", "job.failed", "job.cancelled", "error"}:
                break
        wall = time.perf_counter() - started
    job = message.get("job", {})
    run_time = (parse_time(job["finished_at"]) - parse_time(job["started_at"])).total_seconds()
    print(f"steps={args.steps} interval_ms={args.interval_ms} final={message['type']}")
    print("frames: " + ", ".join(f"{name}={count}" for name, count in frames.items()))
    print(f"job run time {run_time * 1000:.1f} ms (worker), submit to final event {wall * 1000:.1f} ms (client)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--user", default="admin")
    parser.add_argument("--password", required=True)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--interval-ms", type=int, default=0)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
