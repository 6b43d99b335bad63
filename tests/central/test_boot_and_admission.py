"""BootNotification, Heartbeat, the unknown-charger policies and Basic-auth admission."""

from __future__ import annotations

import dataclasses
from typing import Any

import trio

from tests.central.helpers import (
    TIMESTAMP,
    boot_payload,
    call,
    fetch,
    fetchval,
    never_throttled,
)
from voltaro.central import AdmissionDecision, CentralSystem, open_central_system
from voltaro.central import admission as admission_module
from voltaro.central.login_throttle import LoginThrottle
from voltaro.central.passwords import hash_password
from voltaro.config import Settings


async def test_unknown_charger_pending_by_default(central: CentralSystem) -> None:
    assert central.settings.unknown_chargers == "pending"
    admission = await central.admit("CP-NEW", None)
    assert admission.accepted and admission.http_status is None
    assert admission.registration_status == "Pending"
    reply = await call(central, "CP-NEW", "BootNotification", boot_payload())
    assert reply["status"] == "Pending"
    # a Pending charger retries within a minute, so an accepted one comes up quickly
    assert reply["interval"] == 60 < central.settings.heartbeat_interval
    assert TIMESTAMP.match(reply["currentTime"])

    # an operator accepts it; the next boot is Accepted
    assert await central.store.charge_points.set_status("CP-NEW", "Accepted")
    reply = await call(central, "CP-NEW", "BootNotification", boot_payload())
    assert reply["status"] == "Accepted"
    assert reply["interval"] == central.settings.heartbeat_interval


async def test_boot_stores_details_and_history(central: CentralSystem) -> None:
    await central.store.charge_points.upsert("CP1")
    payload = boot_payload(
        chargePointSerialNumber="SN-1",
        chargeBoxSerialNumber="BOX-1",
        firmwareVersion="1.2.3",
        iccid="8988",
        imsi="2620",
        meterType="M",
        meterSerialNumber="MSN",
    )
    reply = await call(central, "CP1", "BootNotification", payload)
    assert reply["status"] == "Accepted"
    await call(central, "CP1", "BootNotification", boot_payload(firmwareVersion="1.2.4"))

    record = await central.store.charge_points.get("CP1")
    assert record is not None
    assert (record.vendor, record.model, record.firmware_version) == ("Acme", "Volt 1", "1.2.4")
    assert record.serial_number is None  # the second boot did not send it
    assert record.last_boot_at is not None
    history = await fetch(
        central,
        "SELECT registration_status, payload FROM boot_notifications"
        " WHERE charge_point_id = 'CP1' ORDER BY id",
    )
    assert [h["payload"] for h in history] == [payload, boot_payload(firmwareVersion="1.2.4")]
    assert [h["registration_status"] for h in history] == ["Accepted", "Accepted"]


async def test_rejected_charge_point_boot(central: CentralSystem) -> None:
    await central.store.charge_points.upsert("CP-R", status="Rejected")
    assert (await central.admit("CP-R", None)).accepted  # it may connect, and is told no
    reply = await call(central, "CP-R", "BootNotification", boot_payload())
    assert reply["status"] == "Rejected"
    assert reply["interval"] == central.settings.heartbeat_interval


async def test_policy_reject(voltaro_settings: Settings, aio_loop: Any) -> None:
    settings = dataclasses.replace(voltaro_settings, unknown_chargers="reject")
    async with open_central_system(settings) as central:
        admission = await central.admit("STRANGER", None)
        assert admission.decision is AdmissionDecision.UNKNOWN
        assert admission.http_status == 404 and not admission.accepted
        assert await central.store.charge_points.get("STRANGER") is None
        await central.store.charge_points.upsert("KNOWN")
        assert (await central.admit("KNOWN", None)).accepted


async def test_policy_accept(voltaro_settings: Settings, aio_loop: Any) -> None:
    settings = dataclasses.replace(voltaro_settings, unknown_chargers="accept")
    async with open_central_system(settings) as central:
        admission = await central.admit("WELCOME", None)
        assert admission.accepted and admission.registration_status == "Accepted"
        reply = await call(central, "WELCOME", "BootNotification", boot_payload())
        assert reply["status"] == "Accepted"
        # a boot from a charger never admitted (no handshake seen) follows the policy too
        reply = await call(central, "DIRECT", "BootNotification", boot_payload())
        assert reply["status"] == "Accepted"


async def test_basic_auth(central: CentralSystem) -> None:
    central.admitter.throttle = never_throttled()  # failures one after the other
    await central.store.charge_points.upsert(
        "CP-PW", password_hash=hash_password("s3cret-key"), lenient=True
    )
    for password in (None, "", "wrong", "S3CRET-KEY"):
        admission = await central.admit("CP-PW", password)
        assert admission.decision is AdmissionDecision.UNAUTHORIZED, password
        assert admission.http_status == 401
    admission = await central.admit("CP-PW", "s3cret-key")
    assert admission.accepted and admission.lenient
    # a second time comes from the verification memory; still right
    assert (await central.admit("CP-PW", "s3cret-key")).accepted
    assert not (await central.admit("CP-PW", "s3cret-kex")).accepted
    # the password changes: the old one no longer works
    await central.store.charge_points.upsert("CP-PW", password_hash=hash_password("new-key"))
    assert not (await central.admit("CP-PW", "s3cret-key")).accepted
    assert (await central.admit("CP-PW", "new-key")).accepted
    stored = await fetchval(central, "SELECT password_hash FROM charge_points WHERE id = 'CP-PW'")
    assert "new-key" not in stored and stored.startswith("scrypt$")


async def test_no_password_stored_ignores_credentials(central: CentralSystem) -> None:
    await central.store.charge_points.upsert("CP-OPEN")
    assert (await central.admit("CP-OPEN", "anything")).accepted
    assert not (await central.admit("CP-OPEN", None)).lenient


async def test_heartbeat_answers_the_time(central: CentralSystem) -> None:
    await central.store.charge_points.upsert("CP-HB")
    reply = await call(central, "CP-HB", "Heartbeat", {})
    assert TIMESTAMP.match(reply["currentTime"])


class ManualClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_failed_logins_back_off_per_charge_point_and_address(central: CentralSystem) -> None:
    clock = ManualClock()
    central.admitter.throttle = LoginThrottle(monotonic=clock)
    await central.store.charge_points.upsert("CP-A", password_hash=hash_password("right-key-a"))
    await central.store.charge_points.upsert("CP-B", password_hash=hash_password("right-key-b"))

    assert (await central.admit("CP-A", "guess-1", "10.0.0.9")).http_status == 401
    throttled = await central.admit("CP-A", "guess-2", "10.0.0.9")
    assert (throttled.http_status, throttled.retry_after) == (429, 1)
    # the address is blocked too, for every charge point; another address is not
    assert (await central.admit("CP-B", "right-key-b", "10.0.0.9")).http_status == 429
    assert (await central.admit("CP-B", "right-key-b", "10.0.0.7")).accepted
    # the right password of a charger not verified yet waits like a guess would
    assert (await central.admit("CP-A", "right-key-a", "10.0.0.7")).http_status == 429

    clock.now += 1
    assert (await central.admit("CP-A", "guess-3", "10.0.0.9")).http_status == 401
    assert (await central.admit("CP-A", "guess-4", "10.0.0.9")).retry_after == 2  # doubled
    clock.now += 2
    assert (await central.admit("CP-A", "right-key-a", "10.0.0.7")).accepted
    # verified once, the charger gets in even while someone keeps its id blocked
    assert (await central.admit("CP-A", "guess-5", "10.0.0.9")).http_status == 401
    assert (await central.admit("CP-A", "right-key-a", "10.0.0.7")).accepted
    assert (central.admitter.failed_logins, central.admitter.throttled_logins) == (3, 4)

    await central.store.writer.flush()
    events = await fetch(
        central,
        "SELECT charge_point_id, remote_address, kind, detail FROM security_events ORDER BY id",
    )
    assert (
        events
        == [
            {
                "charge_point_id": "CP-A",
                "remote_address": "10.0.0.9",
                "kind": "login failed",
                "detail": "wrong password",
            }
        ]
        * 3
    )


async def test_missing_credentials_count_as_a_failed_login(central: CentralSystem) -> None:
    central.admitter.throttle = LoginThrottle(monotonic=ManualClock())
    await central.store.charge_points.upsert("CP-N", password_hash=hash_password("right-key"))
    assert (await central.admit("CP-N", None, "10.0.0.5")).http_status == 401
    assert (await central.admit("CP-N", None, "10.0.0.5")).http_status == 429
    await central.store.writer.flush()
    details = await fetch(central, "SELECT detail FROM security_events")
    assert details == [{"detail": "no Basic credentials"}]


async def test_a_full_hashing_queue_answers_503_instead_of_queueing(
    central: CentralSystem, monkeypatch: Any
) -> None:
    monkeypatch.setattr(admission_module, "MAX_WAITING_VERIFICATIONS", 1)
    await central.store.charge_points.upsert("CP-Q", password_hash=hash_password("right-key"))
    hashing = central.admitter.hashing
    holders = [object() for _ in range(int(hashing.total_tokens))]
    for holder in holders:  # every hashing thread busy
        hashing.acquire_on_behalf_of_nowait(holder)
    results: list[Any] = []
    async with trio.open_nursery() as nursery:

        async def first() -> None:
            results.append(await central.admit("CP-Q", "right-key", "10.0.0.1"))

        nursery.start_soon(first)
        with trio.fail_after(10):
            while hashing.statistics().tasks_waiting < 1:
                await trio.sleep(0.01)
        busy = await central.admit("CP-Q", "right-key", "10.0.0.2")
        assert (busy.http_status, busy.retry_after) == (503, admission_module.BUSY_RETRY_AFTER)
        assert busy.reason == "too many password checks waiting"  # the log's why
        for holder in holders:
            hashing.release_on_behalf_of(holder)
    assert results[0].accepted  # the one that waited was served
    assert central.admitter.busy_refusals == 1


def test_the_two_503s_say_different_things_in_the_log() -> None:
    """A full hashing queue and a database that cannot be asked are both 503 to the charger;
    the log line says which (a storm's database outage was logged as password checks)."""
    from voltaro.central.admission import Admission, AdmissionDecision

    busy = Admission(AdmissionDecision.BUSY)
    unavailable = Admission(AdmissionDecision.UNAVAILABLE)
    assert busy.http_status == unavailable.http_status == 503
    assert busy.reason == "too many password checks waiting"
    assert unavailable.reason == "the database cannot be asked now"
    assert Admission(AdmissionDecision.UNKNOWN).reason is None  # the status says it
