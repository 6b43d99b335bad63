"""BootNotification, Heartbeat, the unknown-charger policies and Basic-auth admission."""

from __future__ import annotations

import dataclasses
from typing import Any

import trio

from tests.central.helpers import TIMESTAMP, boot_payload, call, fetch, fetchval
from voltaro.central import AdmissionDecision, CentralSystem, open_central_system
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


async def test_heartbeat_and_last_seen(central: CentralSystem) -> None:
    await central.store.charge_points.upsert("CP-HB")
    reply = await call(central, "CP-HB", "Heartbeat", {})
    assert TIMESTAMP.match(reply["currentTime"])
    central.presence.flush()
    await central.store.writer.flush()
    last_seen = await fetchval(central, "SELECT last_seen FROM charge_points WHERE id = 'CP-HB'")
    assert last_seen is not None
    await trio.sleep(0.01)
    await call(central, "CP-HB", "Heartbeat", {})
    central.presence.flush()
    await central.store.writer.flush()
    later = await fetchval(central, "SELECT last_seen FROM charge_points WHERE id = 'CP-HB'")
    assert later > last_seen
