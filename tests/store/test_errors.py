"""Which errors are the database being away (the batch fails whole, the charger is answered
InternalError and retries) and which are one bad write."""

from __future__ import annotations

import asyncpg

from voltaro.store.errors import is_outage


def test_an_operation_on_a_connection_the_server_ended_is_an_outage() -> None:
    # what asyncpg raised for a pooled connection whose backend was terminated meanwhile
    # (tests/central/test_membership.py saw it now and then)
    busy = asyncpg.InternalClientError(
        "cannot switch to state 12; another operation (2) is in progress"
    )
    assert is_outage(busy)
    assert is_outage(ConnectionResetError())
    assert not is_outage(asyncpg.DataError("invalid input syntax"))
    assert not is_outage(ValueError("not a database error"))
