"""Debian programs some tests drive (HAProxy, docker-compose): skipped without them, unless
CI says they must run (``VOLTARO_REQUIRE_<NAME>=1``, set by ``.ci/run``, which installs them)."""

from __future__ import annotations

import os
import shutil

import pytest


def installed_tool(program: str, required_by: str) -> str:
    """The path of ``program``; without it the test fails when ``required_by`` is set to 1,
    else it is skipped, naming the Debian package to install."""
    path = shutil.which(program)
    if path is None:
        if os.environ.get(required_by) == "1":
            pytest.fail(f"{program} is not installed ({required_by}=1)")
        pytest.skip(f"{program} is not installed (apt-get install {program})")
    return path
