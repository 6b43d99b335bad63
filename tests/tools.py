"""Debian programs some tests drive (HAProxy, docker-compose): skipped without them, unless
CI says they must run (``VOLTARO_REQUIRE_<NAME>=1``, set by ``.ci/run``, which installs them);
and a count of the pool operations a running Voltaro makes."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from voltaro.store.database import Database


def installed_tool(program: str, required_by: str) -> str:
    """The path of ``program``; without it the test fails when ``required_by`` is set to 1,
    else it is skipped, naming the Debian package to install."""
    path = shutil.which(program)
    if path is None:
        if os.environ.get(required_by) == "1":
            pytest.fail(f"{program} is not installed ({required_by}=1)")
        pytest.skip(f"{program} is not installed (apt-get install {program})")
    return path


@contextmanager
def counting_pool_operations(database: Database, modules: tuple[str, ...]) -> Iterator[list[int]]:
    """Count the operations ``database``'s pool runs meanwhile whose function comes from one
    of ``modules`` (the real database's; the other tasks' operations are not counted)."""
    count = [0]
    original = database.run

    async def run(fn: Any, *args: Any, **kwargs: Any) -> Any:
        if getattr(fn, "__module__", "") in modules:
            count[0] += 1
        return await original(fn, *args, **kwargs)

    database.run = run  # type: ignore[method-assign]
    try:
        yield count
    finally:
        del database.run
