"""POST /api/uploads/ with the token: the file streamed from disk, never read whole into memory."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from jobsctl.errors import CliError

CHUNK = 1024 * 1024
TIMEOUT = 300.0  # seconds without a byte moving; a 100 MiB file over a slow link needs a while


def upload(base_url: str, token: str, path: Path) -> dict[str, Any]:
    """Upload `path`; the server's answer {"id", "name", "size"}."""
    if not path.is_file():
        raise CliError(f"{path} is not a readable file.", "usage")
    boundary = uuid.uuid4().hex
    # The server keeps only a sanitised display name; quotes and line breaks would break the header.
    name = path.name.replace('"', "_").replace("\r", "_").replace("\n", "_")
    head = (
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="file"; filename="{name}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": f"multipart/form-data; boundary={boundary}",
        # The server refuses a body without a length (411), so the stream gets one.
        "Content-Length": str(len(head) + path.stat().st_size + len(tail)),
    }
    url = base_url.rstrip("/") + "/api/uploads/"
    # The scheme was checked to be http or https when the URL was read (cli.base_url).
    request = urllib.request.Request(url, data=_body(head, path, tail), headers=headers, method="POST")  # noqa: S310
    return _send(request, url)


def _body(head: bytes, path: Path, tail: bytes) -> Iterator[bytes]:
    yield head
    with path.open("rb") as file:
        while chunk := file.read(CHUNK):
            yield chunk
    yield tail


def _send(request: urllib.request.Request, url: str) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:  # noqa: S310
            answer: dict[str, Any] = json.loads(response.read())
            return answer
    except urllib.error.HTTPError as exc:
        raise _refused(exc) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise CliError(f"Cannot upload to {url}: {reason}") from None


def _refused(exc: urllib.error.HTTPError) -> CliError:
    try:
        error = json.loads(exc.read())["error"]
        return CliError(f"{error['message']} (HTTP {exc.code})", str(error["code"]))
    except (ValueError, KeyError, TypeError):
        return CliError(f"The upload failed: HTTP {exc.code} {exc.reason}.", "upload_failed")
