"""The admin API's bearer token: from ``VOLTARO_ADMIN_TOKEN``, or generated once.

A generated token is kept in ``<data dir>/admin-token`` (created with mode 0600, never
widened) and printed once, when it is created; later starts read it back silently.
"""

from __future__ import annotations

import logging
import os
import secrets
import sys
from pathlib import Path

log = logging.getLogger(__name__)

TOKEN_FILE = "admin-token"


def admin_token(configured: str | None, data_dir: Path) -> str:
    """The token to require: ``configured`` when set, else the data directory's one."""
    if configured:
        return configured
    path = data_dir / TOKEN_FILE
    try:
        existing = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        existing = ""
    if existing:
        return existing
    data_dir.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:  # another process made it first: use theirs
        return path.read_text(encoding="utf-8").strip()
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(token + "\n")
    print(
        f"Admin API token (shown once; kept in {path}, mode 0600):\n    {token}",
        file=sys.stdout,
        flush=True,
    )
    log.info("generated an admin API token in %s", path)
    return token
