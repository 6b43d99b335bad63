"""Shared fixtures: the embedded PostgreSQL (one per session, a fresh database per test)."""

pytest_plugins = ["voltaro.store.testing"]
