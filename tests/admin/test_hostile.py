"""What a hostile or broken charger sends must not break the operator's side: every read
stays total over whatever is stored, bad values are refused on the wire, CSV cells cannot
run as formulas, secrets are not shown, and bad admin requests get 400, not 500."""

from __future__ import annotations

import csv
import io
import itertools
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

from tests.admin.conftest import Live, run_sql
from voltaro.central.redaction import REDACTED

_ids = itertools.count(1)


class SyncCharger:
    """A charger speaking raw OCPP-J frames over a blocking WebSocket (the admin tests run
    the server on a thread). Frames are written with Python's json, so integers of any size
    go out as they are."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    def call(self, action: str, payload: dict[str, Any]) -> list[Any]:
        message_id = f"h{next(_ids)}"
        self.ws.send(json.dumps([2, message_id, action, payload]))
        while True:
            frame: list[Any] = json.loads(self.ws.recv(timeout=10))
            if frame[1] == message_id:
                return frame

    def result(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        frame = self.call(action, payload)
        assert frame[0] == 3, frame
        answer: dict[str, Any] = frame[2]
        return answer

    def next_call(self) -> list[Any]:
        """The next CALL from Voltaro other than its own local-list check (sent on its own
        a few seconds after boot, so it may come before an operator's command): that one is
        answered NotImplemented, which makes Voltaro stop asking."""
        while True:
            frame: list[Any] = json.loads(self.ws.recv(timeout=10))
            assert frame[0] == 2, frame
            if frame[2] != "GetLocalListVersion":
                return frame
            self.ws.send(json.dumps([4, frame[1], "NotImplemented", "", {}]))


@contextmanager
def charger(live: Live, charge_point_id: str, password: str | None = None) -> Iterator[SyncCharger]:
    url = live.ws_url(charge_point_id)
    if password is not None:
        url = url.replace("ws://", f"ws://{charge_point_id}:{password}@")
    with connect(url, subprotocols=["ocpp1.6"], open_timeout=10) as ws:  # type: ignore[list-item]
        yield SyncCharger(ws)


def handshake_status(live: Live, charge_point_id: str, password: str) -> int:
    try:
        with charger(live, charge_point_id, password):
            return 101
    except InvalidStatus as refused:
        return int(refused.response.status_code)


@contextmanager
def dashboard(live: Live) -> Iterator[httpx.Client]:
    """A browser-like client, signed in to the dashboard."""
    with httpx.Client(base_url=live.base, timeout=30) as client:
        signed_in = client.post("/login", data={"token": live.token, "next": "/"})
        assert signed_in.status_code == 302
        yield client


BOOT = {"chargePointVendor": "Hostile", "chargePointModel": "H1"}


def start(charge_point_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "connectorId": 1,
        "idTag": "HOSTILE",
        "meterStart": 1000,
        "timestamp": "2026-11-30T10:00:00Z",
    } | fields


# ---- 1. values a charger may send, and what reads make of them --------------------------


def test_times_outside_the_accepted_range_are_refused_on_the_wire(live: Live) -> None:
    with charger(live, "HOSTILE-TIME") as cp:
        cp.result("BootNotification", BOOT)
        for action, payload in (
            ("StartTransaction", start("HOSTILE-TIME", timestamp="0001-01-01T00:00:00Z")),
            (
                "StatusNotification",
                {
                    "connectorId": 1,
                    "errorCode": "NoError",
                    "status": "Available",
                    "timestamp": "0001-01-01T00:00:00Z",
                },
            ),
            (
                "MeterValues",
                {
                    "connectorId": 1,
                    "meterValue": [
                        {"timestamp": "9999-12-31T23:59:59-05:00", "sampledValue": [{"value": "1"}]}
                    ],
                },
            ),
        ):
            frame = cp.call(action, payload)
            assert frame[0] == 4 and frame[2] == "PropertyConstraintViolation", frame
            assert "outside the times Voltaro accepts" in frame[3]
    with live.client() as api:
        assert (
            api.get("/api/v1/transactions", params={"chargePointId": "HOSTILE-TIME"}).json()[
                "total"
            ]
            == 0
        )


def reads(live: Live, charge_point_id: str) -> list[httpx.Response]:
    """Every admin read a charger's data shows up in, API and dashboard."""
    answers = []
    with live.client() as api, dashboard(live) as pages:
        listed = api.get("/api/v1/transactions", params={"chargePointId": charge_point_id})
        answers += [listed, api.get("/api/v1/transactions", params={"limit": 1000})]
        for transaction in listed.json()["items"] if listed.status_code == 200 else []:
            number = transaction["transactionId"]
            answers += [
                api.get(f"/api/v1/transactions/{number}"),
                pages.get(f"/transactions/{number}"),
            ]
        base = f"/api/v1/charge-points/{charge_point_id}"
        answers += [
            api.get("/api/v1/transactions.csv"),
            api.get(base),
            api.get(base + "/status-history"),
            api.get(base + "/messages", params={"limit": 1000}),
            api.get("/api/v1/charge-points", params={"limit": 1000}),
            pages.get("/"),
            pages.get("/transactions"),
            pages.get("/charge-points"),
            pages.get(f"/charge-points/{charge_point_id}"),
            pages.get(f"/charge-points/{charge_point_id}/messages"),
        ]
    return answers


def test_reads_are_total_over_values_put_there_by_hand(live: Live) -> None:
    """Rows no charger can create any more (times at PostgreSQL's infinities, energies beyond
    64-bit integers) still read: written by an older version or by SQL."""
    with charger(live, "HOSTILE-SQL") as cp:
        cp.result("BootNotification", BOOT)
        cp.result(
            "StatusNotification", {"connectorId": 1, "errorCode": "NoError", "status": "Available"}
        )
        number = cp.result("StartTransaction", start("HOSTILE-SQL"))["transactionId"]
    sql = [
        "UPDATE transactions SET started_at = '-infinity', stopped_at = 'infinity',"
        " meter_start = -9000000000000000000, meter_stop = 9000000000000000000,"
        " energy_wh = 1.8e19 WHERE transaction_id = $1",
        "UPDATE connector_status_history SET charger_timestamp = '-infinity',"
        " received_at = 'infinity' WHERE charge_point_id = 'HOSTILE-SQL'",
        "UPDATE connectors SET charger_timestamp = 'infinity'"
        " WHERE charge_point_id = 'HOSTILE-SQL'",
        "UPDATE charge_points SET last_seen = 'infinity', last_boot_at = '-infinity'"
        " WHERE id = 'HOSTILE-SQL'",
        "UPDATE message_log SET logged_at = '-infinity' WHERE charge_point_id = 'HOSTILE-SQL'",
    ]
    for statement in sql:
        args = (number,) if "$1" in statement else ()
        run_sql(live, statement, *args)
    for answer in reads(live, "HOSTILE-SQL"):
        assert answer.status_code == 200, (answer.url, answer.text[:300])
    with live.client() as api:
        detail = api.get(f"/api/v1/transactions/{number}").json()
    assert detail["startTimestamp"] == "0001-01-01T00:00:00Z"
    assert detail["stopTimestamp"] == "9999-12-31T23:59:59.999999Z"
    assert detail["energyWh"] == 1.8e19  # beyond 2**53: a float, as JSON can carry it


def test_negative_energy_is_flagged_not_billed(live: Live) -> None:
    with charger(live, "HOSTILE-NEG") as cp:
        cp.result("BootNotification", BOOT)
        number = cp.result("StartTransaction", start("HOSTILE-NEG", idTag="NEG-1"))["transactionId"]
        cp.result(
            "StopTransaction",
            {"transactionId": number, "meterStop": 400, "timestamp": "2026-11-30T11:00:00Z"},
        )
    with live.client() as api:
        detail = api.get(f"/api/v1/transactions/{number}").json()
        rows = list(
            csv.DictReader(
                io.StringIO(
                    api.get(
                        "/api/v1/transactions.csv", params={"chargePointId": "HOSTILE-NEG"}
                    ).text
                )
            )
        )
    assert detail["energyWh"] is None
    assert detail["energyAnomaly"].startswith("negative energy")
    assert detail["stopReason"] == "Local"  # absent in the StopTransaction: Local, says OCPP
    assert (rows[0]["energyWh"], rows[0]["energyAnomaly"][:15]) == ("", "negative energy")
    with dashboard(live) as pages:
        assert "not billed" in pages.get(f"/transactions/{number}").text


def test_a_huge_meter_reading_is_stored_but_not_taken_as_energy(live: Live) -> None:
    with charger(live, "HOSTILE-BIG") as cp:
        cp.result("BootNotification", BOOT)
        number = cp.result("StartTransaction", start("HOSTILE-BIG", idTag="BIG-1"))["transactionId"]
        for value in ("1e20", "nan", "-inf", "1500"):
            sample = {"timestamp": "2026-11-30T10:30:00Z", "sampledValue": [{"value": value}]}
            assert (
                cp.call(
                    "MeterValues",
                    {"connectorId": 1, "transactionId": number, "meterValue": [sample]},
                )[0]
                == 3
            )
    for answer in reads(live, "HOSTILE-BIG"):
        assert answer.status_code == 200, (answer.url, answer.text[:300])
    with live.client() as api:
        detail = api.get(f"/api/v1/transactions/{number}").json()
    assert detail["energyWh"] == 500  # the one reading in range
    assert {v["value"] for v in detail["meterValues"]} == {"1e20", "nan", "-inf", "1500"}


# A timestamp anywhere near the edges, in any offset, valid or not.
TIMES = st.builds(
    "{:04d}-{:02d}-{:02d}T{:02d}:{:02d}:{:02d}{}{}".format,
    st.sampled_from([0, 1, 1969, 1970, 2026, 9998, 9999]),
    st.integers(1, 12),
    st.integers(1, 31),
    st.integers(0, 23),
    st.integers(0, 59),
    st.integers(0, 60),
    st.sampled_from(["", ".5", ".999999999"]),
    st.sampled_from(["Z", "+23:59", "-23:59", "+00:00", "-05:00"]),
)
INTEGERS = st.one_of(
    st.integers(-(2**70), 2**70),
    st.sampled_from([0, -1, 2**31 - 1, 2**31, 2**53 + 1, 2**63 - 1, 2**63, -(2**63)]),
)
VALUES = st.one_of(
    st.sampled_from(["1e20", "-1e20", "1e400", "nan", "inf", "-0", "", "abc", "1_0", "0x10"]),
    st.floats().map(repr),
    INTEGERS.map(str),
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    times=st.lists(TIMES, min_size=4, max_size=4),
    meter=st.lists(INTEGERS, min_size=2, max_size=2),
    values=st.lists(VALUES, min_size=1, max_size=4),
    reason=st.sampled_from([None, "Local", "Other"]),
)
def test_no_admin_read_fails_on_anything_a_charger_can_send(
    live: Live, times: list[str], meter: list[int], values: list[str], reason: str | None
) -> None:
    """Whatever a charger sends (answered or refused), every read of the admin API and the
    dashboard answers 200 afterwards."""
    charge_point_id = f"PROP-{next(_ids)}"
    with charger(live, charge_point_id) as cp:
        cp.call("BootNotification", BOOT)
        cp.call(
            "StatusNotification",
            {"connectorId": 1, "errorCode": "NoError", "status": "Charging", "timestamp": times[0]},
        )
        started = cp.call(
            "StartTransaction",
            start(charge_point_id, idTag=f"P{next(_ids)}", meterStart=meter[0], timestamp=times[1]),
        )
        number = started[2]["transactionId"] if started[0] == 3 else 1
        cp.call(
            "MeterValues",
            {
                "connectorId": 1,
                "transactionId": number,
                "meterValue": [
                    {"timestamp": times[2], "sampledValue": [{"value": v} for v in values]}
                ],
            },
        )
        stop: dict[str, Any] = {"transactionId": number, "meterStop": meter[1]}
        cp.call(
            "StopTransaction",
            stop | {"timestamp": times[3]} | ({"reason": reason} if reason else {}),
        )
    for answer in reads(live, charge_point_id):
        assert answer.status_code == 200, (answer.url, answer.text[:300])


# ---- 2. nesting ------------------------------------------------------------------------------


def nested(depth: int) -> Any:
    value: Any = "deep"
    for _ in range(depth):
        value = [value]
    return value


def nested_text(depth: int) -> str:
    """JSON text of ``nested(depth)``, written without recursion (Python's json gives up
    near 1,000 levels)."""
    return "[" * depth + '"deep"' + "]" * depth


def test_nested_admin_bodies_are_bad_requests(live: Live) -> None:
    with live.client() as api:
        for depth in (40, 300, 5000):
            body = '{"status": "Accepted", "parentIdTag": ' + nested_text(depth) + "}"
            answer = api.put("/api/v1/id-tags/NEST-1", content=body)
            assert answer.status_code == 400, answer.text
            assert "levels" in answer.json()["detail"] or "JSON" in answer.json()["detail"]
            command = api.post(
                "/api/v1/charge-points/ANYONE/commands/DataTransfer",
                content='{"vendorId": "v", "data": ' + nested_text(depth) + "}",
            )
            assert command.status_code == 400, command.text


def test_a_nested_answer_to_a_command_is_a_bad_gateway_at_once(live: Live) -> None:
    import threading

    with live.client() as api:
        api.put("/api/v1/charge-points/NEST-CP", json={"registrationStatus": "Accepted"})
    with charger(live, "NEST-CP") as cp:
        cp.result("BootNotification", BOOT)
        answers: dict[str, httpx.Response] = {}

        def operator() -> None:
            with live.client() as api:
                answers["reset"] = api.post(
                    "/api/v1/charge-points/NEST-CP/commands/Reset",
                    params={"timeout": 60},
                    json={"type": "Soft"},
                )

        thread = threading.Thread(target=operator)
        thread.start()
        request = cp.next_call()
        cp.ws.send(json.dumps([3, request[1], {"status": nested(254)}]))
        thread.join(30)
    answer = answers["reset"]
    assert answer.status_code == 502, answer.text
    assert "levels" in answer.json()["detail"]


# ---- 4. CSV formulas --------------------------------------------------------------------------


@pytest.mark.parametrize("charge_point_id", ["=CP-EVIL", "+CP-EVIL", "-CP-EVIL", "@CP-EVIL"])
def test_csv_cells_cannot_run_as_formulas(live: Live, charge_point_id: str) -> None:
    tag = '=HYPERLINK("//x")'
    with charger(live, charge_point_id) as cp:
        cp.result("BootNotification", BOOT)
        cp.result("StartTransaction", start(charge_point_id, idTag=tag, meterStart=-5))
    with live.client() as api:
        text = api.get("/api/v1/transactions.csv", params={"chargePointId": charge_point_id}).text
    (row,) = csv.DictReader(io.StringIO(text))
    assert row["chargePointId"] == "'" + charge_point_id
    assert row["idTag"] == "'" + tag
    assert row["meterStart"] == "-5"  # numbers stay numbers


# ---- 12. AuthorizationKey ---------------------------------------------------------------------


def test_an_accepted_authorization_key_becomes_the_password_and_is_never_shown(
    live: Live,
) -> None:
    import threading

    from tests.admin.test_resources import unthrottled

    unthrottled(live.voltaro)
    with live.client() as api:
        api.put(
            "/api/v1/charge-points/KEY-CP",
            json={"registrationStatus": "Accepted", "password": "old-key-0123456"},
        )
    new_key = "new-key-9876543210"
    with charger(live, "KEY-CP", "old-key-0123456") as cp:
        cp.result("BootNotification", BOOT)
        answers: dict[str, httpx.Response] = {}

        def operator() -> None:
            with live.client() as api:
                path = "/api/v1/charge-points/KEY-CP/commands/"
                answers["change"] = api.post(
                    path + "ChangeConfiguration", json={"key": "AuthorizationKey", "value": new_key}
                )
                answers["get"] = api.post(path + "GetConfiguration", json={})

        thread = threading.Thread(target=operator)
        thread.start()
        change = cp.next_call()
        assert change[3] == {"key": "AuthorizationKey", "value": new_key}
        cp.ws.send(json.dumps([3, change[1], {"status": "Accepted"}]))
        get = cp.next_call()
        # a charger that reports the key, as it should not
        keys = [
            {"key": "AuthorizationKey", "readonly": False, "value": new_key},
            {"key": "HeartbeatInterval", "readonly": False, "value": "300"},
        ]
        cp.ws.send(json.dumps([3, get[1], {"configurationKey": keys}]))
        thread.join(30)
    assert answers["change"].json() == {"result": {"status": "Accepted"}}
    assert handshake_status(live, "KEY-CP", new_key) == 101
    assert handshake_status(live, "KEY-CP", "old-key-0123456") == 401
    with live.client() as api:
        detail = api.get("/api/v1/charge-points/KEY-CP").json()
        known = {c["key"]: c["value"] for c in detail["configuration"]}
        assert known == {"AuthorizationKey": REDACTED, "HeartbeatInterval": "300"}
        log = api.get("/api/v1/charge-points/KEY-CP/messages", params={"limit": 1000}).text
    assert new_key not in log and REDACTED in log


# ---- 11. registration -------------------------------------------------------------------------


def test_a_pending_charger_gets_no_id_tag_information_until_accepted(live: Live) -> None:
    with live.client() as api:
        api.put("/api/v1/charge-points/PENDING-CP", json={"registrationStatus": "Pending"})
        api.put("/api/v1/id-tags/KNOWN-TAG", json={"status": "Accepted"})
    with charger(live, "PENDING-CP") as cp:
        assert cp.result("BootNotification", BOOT)["status"] == "Pending"
        assert "currentTime" in cp.result("Heartbeat", {})
        status = {"connectorId": 1, "errorCode": "NoError", "status": "Available"}
        assert cp.result("StatusNotification", status) == {}
        for action, payload in (
            ("Authorize", {"idTag": "KNOWN-TAG"}),
            ("StartTransaction", start("PENDING-CP", idTag="KNOWN-TAG")),
            (
                "MeterValues",
                {
                    "connectorId": 1,
                    "meterValue": [
                        {"timestamp": "2026-11-30T10:00:00Z", "sampledValue": [{"value": "1"}]}
                    ],
                },
            ),
            (
                "StopTransaction",
                {"transactionId": 1, "meterStop": 5, "timestamp": "2026-11-30T10:00:00Z"},
            ),
            ("DataTransfer", {"vendorId": "acme"}),
        ):
            frame = cp.call(action, payload)
            assert frame[0] == 4 and frame[2] == "SecurityError", frame
            assert "Pending" in frame[3]
        with live.client() as api:
            assert (
                api.get("/api/v1/transactions", params={"chargePointId": "PENDING-CP"}).json()[
                    "total"
                ]
                == 0
            )
            # the operator accepts it: its live session is served from then on
            api.put("/api/v1/charge-points/PENDING-CP", json={"registrationStatus": "Accepted"})
        assert cp.result("Authorize", {"idTag": "KNOWN-TAG"})["idTagInfo"]["status"] == "Accepted"


def test_an_accepted_charger_is_served_its_queued_messages_before_it_boots(live: Live) -> None:
    with live.client() as api:
        api.put("/api/v1/charge-points/QUEUED-CP", json={"registrationStatus": "Accepted"})
    with charger(live, "QUEUED-CP") as cp:  # reconnects and replays, no BootNotification
        number = cp.result("StartTransaction", start("QUEUED-CP", idTag="Q-1"))["transactionId"]
        stop = {"transactionId": number, "meterStop": 1500, "timestamp": "2026-11-30T11:00:00Z"}
        cp.result("StopTransaction", stop | {"reason": "EVDisconnected"})
    with live.client() as api:
        detail = api.get(f"/api/v1/transactions/{number}").json()
    assert (detail["energyWh"], detail["stopReason"]) == (500, "EVDisconnected")


# ---- 15. small ones ---------------------------------------------------------------------------


def test_admin_dates_out_of_range_are_bad_requests(live: Live) -> None:
    with live.client() as api:
        for text in (
            "0001-01-01T00:00:00+23:59",
            "9999-12-31T23:59:59-23:59",
            "1969-01-01T00:00:00Z",
        ):
            listed = api.get("/api/v1/transactions", params={"from": text})
            assert listed.status_code == 400, listed.text
            assert "outside the times Voltaro accepts" in listed.json()["detail"]
            tag = api.put("/api/v1/id-tags/DATE-1", json={"expiryDate": text})
            assert tag.status_code == 400, tag.text


def test_login_with_a_control_character_in_next_goes_home(live: Live) -> None:
    with httpx.Client(base_url=live.base, timeout=10) as client:
        form = client.get("/login", params={"next": "/\x0b"})
        assert form.status_code == 200
        signed_in = client.post("/login", data={"token": live.token, "next": "/\x0bX\nY"})
        assert (signed_in.status_code, signed_in.headers["location"]) == (302, "/")
        again = client.get("/login", params={"next": "/\x0b"})
        assert (again.status_code, again.headers["location"]) == (302, "/")


@pytest.mark.parametrize("encoded", ["%2E", "%2E%2E", "%0A", "x" * 49])
def test_ids_the_handshake_would_never_admit_cannot_be_created(live: Live, encoded: str) -> None:
    with live.client() as api:
        answer = api.put(f"/api/v1/charge-points/{encoded}", json={})
        assert answer.status_code == 400, answer.text
        assert "a charger could never connect as" in answer.json()["detail"]
        assert api.get(f"/api/v1/charge-points/{encoded}").status_code == 404  # not created


def test_unsolicited_error_codes_do_not_grow_the_metrics(live: Live) -> None:
    with charger(live, "METRICS-JUNK") as cp:
        cp.result("BootNotification", BOOT)
        for n in range(300):
            cp.ws.send(json.dumps([4, f"junk-{n}", f"JunkCode{n}", "", {}]))
        cp.result("Heartbeat", {})  # all read
    text = httpx.get(live.base + "/metrics").text
    assert "JunkCode" not in text
    assert 'voltaro_ocpp_callerrors_total{code="unknown",direction="in"}' in text


def test_how_loaded_the_process_is_is_on_metrics(live: Live) -> None:
    """The four levels background work gives way at (voltaro/central/overload.py)."""
    text = httpx.get(live.base + "/metrics").text
    values = {
        line.split()[0]: float(line.split()[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
    assert 0.0 <= values["voltaro_process_cpu_share"] < 64.0  # cores: all threads count
    assert 0.0 <= values["voltaro_machine_cpu_share"] <= 1.0  # of all the cores
    assert values["voltaro_event_loop_lag_seconds"] >= 0.0
    assert values["voltaro_db_oldest_write_seconds"] >= 0.0


def test_what_was_refused_dropped_or_cut_is_counted_on_metrics(live: Live) -> None:
    text = httpx.get(live.base + "/metrics").text
    for name in (
        "voltaro_ocpp_login_failures_total",
        "voltaro_ocpp_logins_throttled_total",
        "voltaro_ocpp_logins_busy_total",
        "voltaro_ocpp_refused_database_unavailable_total",
        "voltaro_db_dropped_writes_total",
        "voltaro_db_dropped_write_bytes_total",
        "voltaro_db_refused_writes_total",
        "voltaro_db_outages_total",
        "voltaro_db_queued_background_bytes",
        "voltaro_message_log_truncated_payloads_total",
        "voltaro_message_log_purged_over_charger_bound_total",
        "voltaro_message_log_purged_over_total_bound_total",
        "voltaro_ocpp_sockets_open",
        "voltaro_ocpp_handshakes_in_progress",
        "voltaro_ocpp_handshake_timeouts_total",
        "voltaro_ocpp_refused_per_address_total",
        "voltaro_ocpp_paced_reads_total",
    ):
        assert f"\n{name} " in text, name
    assert 'voltaro_ocpp_accept_pauses_total{reason="files"}' in text
