"""GET /api/artifacts/<id>/ with the token: a job's files, streamed to disk."""

from __future__ import annotations

import shutil
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from jobsctl.errors import CliError
from jobsctl.upload import TIMEOUT


def download(base_url: str, token: str, artifact: dict[str, Any], directory: Path) -> Path:
    """Save one artifact in `directory` under its name (never over an existing file); the path written."""
    url = f"{base_url.rstrip('/')}/api/artifacts/{artifact['id']}/"
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})  # noqa: S310
    target = free_path(directory, str(artifact["name"]))
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response, target.open("xb") as out:  # noqa: S310
            shutil.copyfileobj(response, out, 1024 * 1024)
    except urllib.error.HTTPError as exc:
        raise CliError(f"Cannot download {artifact['name']}: HTTP {exc.code}.", "not_found") from None
    except (urllib.error.URLError, OSError) as exc:
        target.unlink(missing_ok=True)
        raise CliError(f"Cannot download {artifact['name']} from {url}: {getattr(exc, 'reason', exc)}") from None
    return target


def free_path(directory: Path, name: str) -> Path:
    """directory/name, or directory/"stem (2).ext" and so on when that exists. The name is the server's, cleaned."""
    safe = Path(name).name or "artifact"
    candidate = directory / safe
    number = 2
    while candidate.exists():
        candidate = directory / f"{Path(safe).stem} ({number}){Path(safe).suffix}"
        number += 1
    return candidate
