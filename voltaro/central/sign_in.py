"""Dashboard sign-in, and the throttle that makes guessing operators' passwords slow.

Each sign-in is counted against two keys before anything is checked: its account (the name
given) and its client address (:mod:`voltaro.store.sign_in_attempts`: in PostgreSQL, so
every instance of an installation counts the same attempts). An account may fail
``VOLTARO_SIGN_IN_MAX_FAILURES`` times, an address ``VOLTARO_SIGN_IN_MAX_ADDRESS_FAILURES``
times (more: an office of operators shares one address), each count restarting once its
last attempt is ``VOLTARO_SIGN_IN_BLOCK`` seconds old; a key at its limit is blocked until
then, and a sign-in on a blocked key is refused without its password being checked (no
hashing for a guesser). A success clears its account's count and gives its attempt back to
the address, so an operator's typos do not add up over the day.

The admin token given on the sign-in form counts against the address only (it is no
account). A name that cannot be an account's counts against the address only, so a guesser
cannot make rows of arbitrary text.

What a block costs the real operator: anyone can make an account fail, so a guesser can keep
its owner out for ``VOLTARO_SIGN_IN_BLOCK`` seconds at a time; API tokens, other accounts
and the admin token still work meanwhile. Sign-ins of other accounts from other addresses
are never slowed by it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from voltaro.central.accounts import BOOTSTRAP, Accounts, Principal, account_name_problem
from voltaro.config import Settings
from voltaro.store.sign_in_attempts import SignInAttempts


def account_key(name: str) -> str:
    return f"account:{name}"


def address_key(address: str) -> str:
    return f"address:{address}"


@dataclass(frozen=True)
class SignIn:
    """The outcome of one sign-in."""

    principal: Principal | None
    """Who signed in; None when refused."""
    why: str = ""
    """For the person signing in, when refused."""
    retry_after: int = 0
    """Seconds until a refused-for-throttling sign-in may be tried again (0: not throttled)."""
    first_refusal: bool = False
    """The first sign-in refused in this block (worth recording; the others are counted)."""
    blocked_now: bool = False
    """This failure used up the last attempt: the account or the address is blocked now."""


class SignIns:
    """Sign-ins with a password or the admin token, throttled (see the module doc)."""

    def __init__(self, accounts: Accounts, attempts: SignInAttempts, settings: Settings) -> None:
        self._accounts = accounts
        self._attempts = attempts
        self._settings = settings

    async def with_password(self, name: str, password: str, address: str | None) -> SignIn:
        account = account_key(name) if account_name_problem(name) is None else None
        limits = self._limits(account, address)
        begun = await self._attempts.begin(limits, self._settings.sign_in_block)
        if begun.retry_after > 0:
            return _throttled(begun.retry_after, begun.blocked, begun.first_refusal)
        principal = None
        if account is not None:
            principal = await self._accounts.check_password(name, password)
        if principal is None:
            return SignIn(None, "Wrong name or password.", blocked_now=bool(begun.at_limit))
        await self._attempts.succeeded(account, _counted(address, limits))
        return SignIn(principal)

    async def with_token(self, matches: bool, address: str | None) -> SignIn:
        """The admin token given on the form: ``matches`` says whether it is the right one
        (compared by the caller, in constant time)."""
        limits = self._limits(None, address)
        begun = await self._attempts.begin(limits, self._settings.sign_in_block)
        if begun.retry_after > 0:
            return _throttled(begun.retry_after, begun.blocked, begun.first_refusal)
        if not matches:
            return SignIn(None, "Wrong token.", blocked_now=bool(begun.at_limit))
        await self._attempts.succeeded(None, _counted(address, limits))
        return SignIn(BOOTSTRAP)

    def _limits(self, account: str | None, address: str | None) -> dict[str, int]:
        limits = {}
        if account is not None:
            limits[account] = self._settings.sign_in_max_failures
        if address:
            limits[address_key(address)] = self._settings.sign_in_max_address_failures
        return limits


def _counted(address: str | None, limits: dict[str, int]) -> str | None:
    """The address's key, when its attempts are counted."""
    key = address_key(address) if address else None
    return key if key is not None and limits.get(key, 0) > 0 else None


def _throttled(retry_after: float, blocked: tuple[str, ...], first: bool) -> SignIn:
    seconds = max(1, math.ceil(retry_after))
    what = "this account" if any(k.startswith("account:") for k in blocked) else "your address"
    wait = (
        _plural(math.ceil(seconds / 60), "minute") if seconds > 90 else _plural(seconds, "second")
    )
    return SignIn(
        None,
        f"Too many failed sign-ins for {what}: try again in {wait}.",
        retry_after=seconds,
        first_refusal=first,
    )


def _plural(count: int, unit: str) -> str:
    return f"{count} {unit}" if count == 1 else f"{count} {unit}s"
