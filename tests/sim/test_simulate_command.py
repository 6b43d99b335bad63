"""``voltaro simulate`` end to end: a Voltaro on a thread, the command in this thread."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from tests.e2e import start_voltaro_with_loop
from tests.sim.helpers import base_url
from tests.threaded import trio_in_thread
from voltaro.cli import main
from voltaro.config import Settings
from voltaro.sim.charger import REFUSALS_LOGGED, default_id_tag
from voltaro.sim.cli import why_no_session
from voltaro.sim.profiles import profile


def last_json(out: str) -> dict[str, Any]:
    """The JSON document at the end of stdout (the server in this process prints too)."""
    document: dict[str, Any] = json.loads(out[out.rindex("\n{\n") + 1 :] if "\n{\n" in out else out)
    return document


def test_simulate_reports_json_and_fails_on_errors(
    voltaro_settings: Settings,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    fields = {f.name for f in dataclasses.fields(voltaro_settings)}
    ports = {name: 0 for name in ("ocpp_port", "admin_port") if name in fields}
    settings = dataclasses.replace(
        voltaro_settings, ocpp_host="127.0.0.1", unknown_chargers="reject", **ports
    )

    async def start_with_one_known_charger(nursery):  # type: ignore[no-untyped-def]
        voltaro = await nursery.start(start_voltaro_with_loop, settings)
        return voltaro

    with trio_in_thread(start_with_one_known_charger) as voltaro:
        common = ["simulate", "--url", base_url(voltaro), "--duration", "1.5", "--json"]
        common += ["--profile", "stress", "--time-scale", "50", "--connect-window", "0.1"]

        # unknown ids are refused at the handshake (404): that is an error, exit code 1
        assert main([*common, "--chargers", "7", "--id-prefix", "NOBODY-"]) == 1
        refused = last_json(capsys.readouterr().out)
        assert refused["accepted"] == 0
        assert refused["protocol_errors"]["handshake:HTTP 404"] >= 7
        # a refusal is logged: which charger, and what the server answered; past the first
        # few of a kind, at DEBUG (a whole fleet refused would fill the terminal)
        refusals = [
            record
            for record in caplog.records
            if record.name == "voltaro.sim"
            and "connect failed: the server answered HTTP 404" in record.getMessage()
        ]
        warnings = [r.getMessage() for r in refusals if r.levelname == "WARNING"]
        assert len(warnings) == REFUSALS_LOGGED  # of the 7 or more
        assert all(w.startswith("NOBODY-0000") for w in warnings)
        assert warnings[-1].endswith("(more refusals like it: DEBUG)")

    # known chargers whose id tags are known: a session that starts is accepted; and a run
    # so short that none was due yet is no failure
    for charger in ("SIM-000001", "SIM-000002", "SIM-000003"):
        for connector in (1, 2):
            tag = default_id_tag(charger, connector)
            assert main(["idtag", "add", tag, "--database-url", str(settings.database_url)]) == 0
    accept = dataclasses.replace(settings, unknown_chargers="accept")
    with trio_in_thread(lambda nursery: nursery.start(start_voltaro_with_loop, accept)) as voltaro:
        common[2] = base_url(voltaro)
        assert main([*common, "--chargers", "3", "--quiet"]) == 0
        summary = last_json(capsys.readouterr().out)
    assert summary["chargers"] == 3
    assert summary["accepted"] == 3
    assert summary["errors"] == 0
    assert summary["actions"]["BootNotification"]["count"] == 3
    assert summary["actions"]["Heartbeat"]["count"] >= 1  # how many fit in 1.5 s depends on load
    assert summary["messages_per_s"] > 0
    assert summary["driver_lag_p99_ms"] is not None  # the simulator watched its own loop


def test_the_default_connect_window_fits_in_half_the_run() -> None:
    from voltaro.cli import build_parser
    from voltaro.sim.cli import _profile

    def window(*extra: str) -> float:
        args = build_parser().parse_args(["simulate", "--profile", "stress", *extra])
        return _profile(args).connect_window

    assert window("--duration", "15") == 7.5  # the stress profile's own window is 60 s
    assert window("--duration", "600") == 60.0
    assert window("--duration", "15", "--connect-window", "30") == 30.0  # as asked


def test_a_run_that_could_not_charge_fails_and_says_why(
    voltaro_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """Chargers left Pending never charge: the run fails (exit 1) with the reason, where it
    once ended "sessions 0 started" with exit code 0."""
    settings = dataclasses.replace(
        voltaro_settings, ocpp_host="127.0.0.1", ocpp_port=0, admin_port=0
    )
    assert settings.unknown_chargers == "pending"
    with trio_in_thread(
        lambda nursery: nursery.start(start_voltaro_with_loop, settings)
    ) as voltaro:
        argv = ["simulate", "--url", base_url(voltaro), "--duration", "1.5", "--quiet"]
        argv += ["--profile", "stress", "--time-scale", "50", "--connect-window", "0.1"]
        assert main([*argv, "--chargers", "2"]) == 1
    out, err = capsys.readouterr()
    assert "sessions          0 started" in out
    assert "voltaro simulate: no session started: no charger was accepted" in err
    assert "--unknown-chargers accept" in err


def test_why_no_session() -> None:
    stress, throughput = profile("stress"), profile("throughput")
    ran = {"sessions_started": 0, "accepted": 2, "sessions_refused": 0}
    assert why_no_session(ran, stress) is None  # none due yet: no fault of the server's
    assert why_no_session({**ran, "sessions_started": 1, "sessions_refused": 3}, stress) is None
    assert why_no_session({**ran, "accepted": 0}, throughput) is None  # charges never
    refused = why_no_session({**ran, "sessions_refused": 3}, stress)
    assert refused is not None and refused.startswith("3 refused")
    assert "voltaro idtag add" in refused and "--id-tag" in refused
    pending = why_no_session({**ran, "accepted": 0}, stress)
    assert pending is not None and "voltaro chargepoint accept" in pending
