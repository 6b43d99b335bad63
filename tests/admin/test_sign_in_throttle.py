"""Dashboard sign-in throttle over real HTTP, with two instances on one database: repeated
wrong passwords for an account, or from one address, are refused for a while (429 with
Retry-After; problem+json when asked for JSON, the sign-in page with a clear message
otherwise) on every instance, without the password being checked; other accounts from other
addresses sign in as ever; the attempts are audited (a block's refusals once, not each);
a success gives its attempt back.

Client addresses: each test speaks from its own loopback address (127.0.0.x), which the
server sees as the client's."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.admin.conftest import Live, live_settings
from tests.e2e import start_voltaro_with_loop
from tests.threaded import trio_in_thread
from voltaro.config import Settings
from voltaro.store.testing import TestPostgres

PASSWORD = "correct horse battery"
MAX_FAILURES = 3
MAX_ADDRESS_FAILURES = 6
BLOCK = 600.0


@dataclasses.dataclass
class Pair:
    first: Live
    second: Live  # another instance on the same database


@contextlib.contextmanager
def _started(settings: Settings) -> Iterator[Live]:
    with trio_in_thread(
        lambda nursery: nursery.start(start_voltaro_with_loop, settings)
    ) as voltaro:
        assert voltaro.admin_url is not None and settings.admin_token is not None
        yield Live(voltaro, voltaro.admin_url, settings.admin_token)


@pytest.fixture(scope="module")
def pair(pg_server: TestPostgres, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    url = pg_server.new_database()
    base = tmp_path_factory.mktemp("throttle")
    token = "throttle-test-admin-token-0123456789"
    limits: dict[str, Any] = {
        "sign_in_max_failures": MAX_FAILURES,
        "sign_in_max_address_failures": MAX_ADDRESS_FAILURES,
        "sign_in_block": BLOCK,
        "admin_token": token,
    }
    one = dataclasses.replace(live_settings(url, base / "one"), **limits)
    # the second instance takes loopback clients for proxies (X-Forwarded-For names the client)
    two = dataclasses.replace(
        live_settings(url, base / "two"), **limits, trusted_proxies="127.0.0.0/8"
    )
    try:
        with _started(one) as a, _started(two) as b:
            with a.client() as api:
                for name, role in (("ann", "viewer"), ("bob", "viewer"), ("cid", "operator")):
                    body = {"role": role, "password": PASSWORD}
                    assert api.put(f"/api/v1/accounts/{name}", json=body).status_code == 201
            yield Pair(a, b)
    finally:
        pg_server.drop_database(url)


def client_from(live: Live, address: str) -> httpx.Client:
    """A client whose connections come from ``address`` (a loopback address)."""
    transport = httpx.HTTPTransport(local_address=address)
    return httpx.Client(base_url=live.base, transport=transport, timeout=30)


def sign_in(client: httpx.Client, name: str, password: str, **headers: str) -> httpx.Response:
    return client.post(
        "/login", data={"name": name, "password": password, "next": "/"}, headers=headers
    )


def audit(pair: Pair, actor: str) -> list[dict[str, object]]:
    with pair.first.client() as api:
        items: list[dict[str, object]] = api.get(
            "/api/v1/audit", params={"action": "signIn", "actor": actor}
        ).json()["items"]
    return items[::-1]  # oldest first


def test_an_account_is_blocked_on_every_instance_and_others_sign_in(pair: Pair) -> None:
    with (
        client_from(pair.first, "127.0.0.2") as guesser,
        client_from(pair.second, "127.0.0.12") as elsewhere,
        client_from(pair.second, "127.0.0.3") as colleague,
    ):
        for attempt in range(MAX_FAILURES):
            wrong = sign_in(guesser, "ann", f"guess number {attempt}")
            assert wrong.status_code == 401 and "Wrong name or password." in wrong.text

        # Blocked now, on the other instance too, from another address, with the right
        # password: the password is not even checked.
        refused = sign_in(elsewhere, "ann", PASSWORD)
        assert refused.status_code == 429
        assert 0 < int(refused.headers["Retry-After"]) <= BLOCK
        assert "Too many failed sign-ins for this account: try again in" in refused.text
        assert 'role="alert"' in refused.text  # shown on the sign-in page
        as_json = sign_in(guesser, "ann", PASSWORD, Accept="application/json")
        assert as_json.status_code == 429
        assert as_json.headers["Content-Type"].startswith("application/problem+json")
        assert 0 < int(as_json.headers["Retry-After"]) <= BLOCK
        assert as_json.json()["status"] == 429
        assert "Too many failed sign-ins for this account" in as_json.json()["detail"]

        # Another account from another address: not slowed by ann's failures.
        assert sign_in(colleague, "bob", PASSWORD).status_code == 302

    entries = audit(pair, "ann")
    assert [e["status"] for e in entries] == [401] * MAX_FAILURES + [429]  # one refusal kept
    assert [e["outcome"]["blocked"] for e in entries[:-1]] == [False, False, True]  # type: ignore[index]
    assert entries[0]["role"] == "none" and entries[0]["via"] == "dashboard"
    assert entries[0]["request"] == {"remoteAddress": "127.0.0.2"}
    assert entries[-1]["request"] == {"remoteAddress": "127.0.0.12"}
    assert [e["status"] for e in audit(pair, "bob")] == [200]


def test_an_address_guessing_many_accounts_is_blocked(pair: Pair) -> None:
    with (
        client_from(pair.first, "127.0.0.4") as sprayer,
        client_from(pair.second, "127.0.0.4") as sprayer_on_second,
        client_from(pair.second, "127.0.0.5") as other,
    ):
        names = [f"user{n}" for n in range(MAX_ADDRESS_FAILURES)]
        for n, name in enumerate(names):  # half through each instance
            client = sprayer if n % 2 else sprayer_on_second
            assert sign_in(client, name, "spring2026!").status_code == 401
        # cid has never failed, yet nobody signs in from that address for a while
        refused = sign_in(sprayer, "cid", PASSWORD)
        assert refused.status_code == 429
        assert "Too many failed sign-ins for your address" in refused.text
        token_form = sprayer.post("/login", data={"token": pair.first.token, "next": "/"})
        assert token_form.status_code == 429
        # cid from its own address is let in
        assert sign_in(other, "cid", PASSWORD).status_code == 302


def test_a_success_gives_its_attempt_back(pair: Pair) -> None:
    """Two rounds of typos and a success: four failures of the account in all (more than
    its limit, so the success must clear its count), six sign-ins from the address (its
    limit, so each success must give its attempt back for a seventh to be let in)."""
    assert MAX_ADDRESS_FAILURES == 2 * MAX_FAILURES
    with client_from(pair.first, "127.0.0.6") as typist:
        for _ in range(2):
            for _ in range(MAX_FAILURES - 1):
                assert sign_in(typist, "cid", "typo typo typo").status_code == 401
            assert sign_in(typist, "cid", PASSWORD).status_code == 302
        assert sign_in(typist, "cid", PASSWORD).status_code == 302


def test_the_admin_token_on_the_form_counts_against_the_address(pair: Pair) -> None:
    with client_from(pair.first, "127.0.0.7") as client:
        for _ in range(MAX_ADDRESS_FAILURES):
            wrong = client.post("/login", data={"token": "not-the-token-000000", "next": "/"})
            assert wrong.status_code == 401 and "Wrong token." in wrong.text
        right = client.post("/login", data={"token": pair.first.token, "next": "/"})
        assert right.status_code == 429
    with client_from(pair.first, "127.0.0.8") as client:
        assert client.post("/login", data={"token": pair.first.token}).status_code == 302


def test_behind_a_trusted_proxy_the_forwarded_client_is_counted(pair: Pair) -> None:
    """The second instance trusts loopback peers as proxies: the client is the right-most
    X-Forwarded-For address that is not a proxy; a client's own entries further left prove
    nothing. The first instance trusts none: there the header is ignored."""
    guesser = {"X-Forwarded-For": "198.51.100.1, 203.0.113.7"}  # its claim, then the proxy's
    with client_from(pair.second, "127.0.0.20") as proxy:
        for n in range(MAX_ADDRESS_FAILURES):
            wrong = sign_in(proxy, f"nobody{n}", "x" * 12, **guesser)
            assert wrong.status_code == 401
        assert sign_in(proxy, "cid", PASSWORD, **guesser).status_code == 429
        # another client behind the same proxy is not blocked
        other = {"X-Forwarded-For": "203.0.113.8"}
        assert sign_in(proxy, "cid", PASSWORD, **other).status_code == 302
    with client_from(pair.first, "127.0.0.21") as direct:
        assert sign_in(direct, "nobody-direct", "x" * 12, **guesser).status_code == 401
    assert audit(pair, "nobody0")[0]["request"] == {"remoteAddress": "203.0.113.7"}
    assert audit(pair, "nobody-direct")[0]["request"] == {"remoteAddress": "127.0.0.21"}
