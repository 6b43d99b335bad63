"""The admin API's bearer token: from ``VOLTARO_ADMIN_TOKEN``, or generated once.

A generated token is kept in ``<data dir>/admin-token`` (created with mode 0600, never
widened) and printed once, by the start that generated it, when its admin API listens;
every start logs where the token is kept (the file's absolute path, so that an operator in
another directory finds it) and how to use it. If that start fails before listening, the
file is removed, so the next start generates a token and shows it (nobody could have used
the first).
"""

from __future__ import annotations

import logging
import os
import secrets
import sys
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

TOKEN_FILE = "admin-token"


@dataclass(frozen=True)
class AdminToken:
    value: str
    generated_in: Path | None = None
    """The file this start wrote it to; None when configured or read back."""
    kept_in: Path | None = field(default=None, compare=False)
    """The file it is kept in (absolute); None when configured."""

    def usage(self, admin_url: str) -> str:
        """Where the token is and how to use it, for the log of every start (never the
        token itself: logs travel further than the file)."""
        if self.kept_in is None:
            where = "the configured one (VOLTARO_ADMIN_TOKEN or --admin-token)"
            bearer = "$VOLTARO_ADMIN_TOKEN"
        else:
            where = f"in {self.kept_in}"
            bearer = f"$(cat {self.kept_in})"
        return (
            f"admin API token: {where}; the dashboard ({admin_url}/) asks for it, the API"
            f' takes it as a bearer token: curl -H "Authorization: Bearer {bearer}"'
            f" {admin_url}/api/v1/charge-points"
        )

    def announce(self) -> None:
        """Print a token this start generated (call once the admin API listens)."""
        if self.generated_in is not None:
            print(
                f"Admin API token (shown once; kept in {self.generated_in}, mode 0600):\n"
                f"    {self.value}",
                file=sys.stdout,
                flush=True,
            )

    def discard(self) -> None:
        """The start failed before the admin API listened: remove a token it generated."""
        if self.generated_in is not None:
            self.generated_in.unlink(missing_ok=True)


def admin_token(configured: str | None, data_dir: Path) -> AdminToken:
    """The token to require: ``configured`` when set, else the data directory's one."""
    if configured:
        return AdminToken(configured)
    path = data_dir.resolve() / TOKEN_FILE
    try:
        existing = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        existing = ""
    if existing:
        return AdminToken(existing, kept_in=path)
    data_dir.mkdir(parents=True, exist_ok=True)
    # hexadecimal: a URL-safe token starts with "-" one time in 64, and `voltaro command ...
    # --token $TOKEN` then reads it as an option (a CI run of the tests did)
    token = secrets.token_hex(32)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:  # another process made it first: use theirs
        return AdminToken(path.read_text(encoding="utf-8").strip(), kept_in=path)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(token + "\n")
    log.info("generated an admin API token in %s", path)
    return AdminToken(token, generated_in=path, kept_in=path)
