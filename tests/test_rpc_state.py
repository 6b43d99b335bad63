"""Tests of voltaro.ocppj.rpc_state: the OCPP-J rules of one connection, without sockets.

Frames go in as text, events come out; every case of the rule table is exercised and checked
against the table itself, so the table cannot say one thing while the code does another.
"""

from __future__ import annotations

import dataclasses
from types import MappingProxyType
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from voltaro.ocppj.actions import Direction
from voltaro.ocppj.dialect import OCPP16, Dialect
from voltaro.ocppj.errors import ErrorCode
from voltaro.ocppj.frames import CallError, CallResult
from voltaro.ocppj.rpc_events import (
    AnswerDropped,
    AnswerReceived,
    BadFrame,
    BrokenAnswer,
    CallReceived,
    CallRefused,
    Event,
    FrameIgnored,
)
from voltaro.ocppj.rpc_state import (
    MAX_QUEUED_BYTES,
    MAX_QUEUED_CALLS,
    RULES,
    Case,
    LocalProtocolError,
    RpcState,
    wire_size,
)

HANDLED = frozenset({"Heartbeat", "BootNotification", "DataTransfer"})


def frame(*parts: Any) -> str:
    return orjson.dumps(list(parts)).decode()


def state(**options: Any) -> RpcState:
    return RpcState(HANDLED, id_prefix="us", **options)


def received(
    rpc: RpcState, message_id: str, action: str = "Heartbeat", **payload: Any
) -> CallReceived:
    event = rpc.receive(frame(2, message_id, action, payload))
    assert isinstance(event, CallReceived), event
    return event


# --- the table and the code agree ---------------------------------------------------------


def case_events() -> dict[Case, tuple[Event, CallError | None]]:
    """One message of each case of the table: the event it makes, and the answer sent (now
    or in turn)."""
    out: dict[Case, tuple[Event, CallError | None]] = {}
    rpc = state()
    unreadable = rpc.receive("[2, 5]")
    assert isinstance(unreadable, BadFrame)
    out[Case.UNREADABLE] = (unreadable, unreadable.answer)
    unreadable_answer = rpc.receive('[3, "x"]')
    out[Case.UNREADABLE_ANSWER] = (unreadable_answer, None)
    out[Case.UNKNOWN_TYPE] = (rpc.receive('[7, "x", {}]'), None)
    busy = received(rpc, "busy")
    out[Case.CALL] = (busy, rpc.refusal(busy.call))
    in_use = rpc.receive(frame(2, "busy", "Heartbeat", {}))
    assert isinstance(in_use, CallRefused)
    out[Case.ID_IN_USE] = (in_use, in_use.answer)
    unknown = received(rpc, "u1", "MadeUp")
    out[Case.UNKNOWN_ACTION] = (unknown, rpc.refusal(unknown.call))
    not_handled = received(rpc, "n1", "StopTransaction")
    out[Case.NOT_HANDLED] = (not_handled, rpc.refusal(not_handled.call))
    for n in range(MAX_QUEUED_CALLS - 2):
        received(rpc, f"w{n}")
    full = rpc.receive(frame(2, "one-too-many", "Heartbeat", {}))
    assert isinstance(full, CallRefused)
    out[Case.QUEUE_FULL] = (full, full.answer)
    call = rpc.start_call("Reset", {"type": "Soft"})
    out[Case.ANSWER] = (rpc.receive(frame(3, call.message_id, {"status": "Accepted"})), None)
    out[Case.STRAY_ANSWER] = (rpc.receive(frame(3, call.message_id, {})), None)
    call = rpc.start_call("Reset", {"type": "Soft"})
    out[Case.BROKEN_ANSWER] = (rpc.receive(frame(3, call.message_id, [])), None)
    return out


def test_every_case_of_the_table_makes_the_event_and_answer_the_table_names() -> None:
    events = case_events()
    assert set(events) == set(Case) == set(RULES)
    for case, (event, answer) in events.items():
        rule = RULES[case]
        assert type(event) is rule.event, case
        if rule.answer == "never":
            assert answer is None, case
        if rule.code is not None:
            assert answer is not None and answer.error_code == rule.code, case
    answer = events[Case.UNREADABLE][1]
    assert answer is not None  # the decoder's code, sent now
    assert events[Case.CALL][1] is None  # the handler answers it


# --- the peer's CALLs ---------------------------------------------------------------------


def test_a_call_is_received_with_its_size_and_handled_in_turn() -> None:
    rpc = state()
    text = frame(2, "m1", "DataTransfer", {"vendorId": "Zoë"})
    event = rpc.receive(text)
    assert isinstance(event, CallReceived)
    assert (event.call.message_id, event.call.action) == ("m1", "DataTransfer")
    assert event.size == len(text.encode()) == len(text) + 1
    assert rpc.refusal(event.call) is None


def test_unknown_action_is_not_implemented_and_unhandled_is_not_supported() -> None:
    rpc = state()
    unknown = received(rpc, "a", "MadeUpAction")
    assert rpc.refusal(unknown.call) == CallError(
        "a", ErrorCode.NOT_IMPLEMENTED, "unknown action 'MadeUpAction'"
    )
    rpc.answered(unknown)
    # a 1.6 action nobody handles here, and one the charge point never sends: NotSupported
    for action in ("StopTransaction", "Reset"):
        event = received(rpc, action, action)
        refusal = rpc.refusal(event.call)
        assert refusal is not None and refusal.error_code == ErrorCode.NOT_SUPPORTED
        rpc.answered(event)


def test_handled_is_asked_when_the_turn_comes() -> None:
    handled: set[str] = set()
    rpc = RpcState(handled)
    event = received(rpc, "m1", "Authorize", idTag="t")
    handled.add("Authorize")
    assert rpc.refusal(event.call) is None


def test_an_id_in_use_is_refused_until_its_call_is_answered() -> None:
    rpc = state()
    first = received(rpc, "same")
    refused = rpc.receive(frame(2, "same", "Heartbeat", {}))
    assert isinstance(refused, CallRefused)
    assert refused.answer.message_id == "same"
    assert refused.answer.error_code == ErrorCode.PROTOCOL_ERROR
    assert "already in use" in refused.answer.description
    rpc.answered(first)
    received(rpc, "same")  # free again: ids are unique among CALLs in progress


def test_ids_of_waiting_calls_stay_in_use_until_each_is_answered() -> None:
    rpc = state()
    first, second = received(rpc, "a"), received(rpc, "b")
    rpc.answered(first)
    assert isinstance(rpc.receive(frame(2, "b", "Heartbeat", {})), CallRefused)
    third = received(rpc, "a")  # free again while "b" is answered
    rpc.answered(second)
    rpc.answered(third)
    for message_id in ("a", "b"):  # nothing in progress: every id is free
        rpc.answered(received(rpc, message_id))


def test_at_most_max_queued_calls_wait_besides_the_one_being_answered() -> None:
    rpc = state()
    working = received(rpc, "working")
    waiting = [received(rpc, f"w{n}") for n in range(MAX_QUEUED_CALLS)]
    refused = rpc.receive(frame(2, "late", "Heartbeat", {}))
    assert isinstance(refused, CallRefused)
    assert refused.answer.error_code == ErrorCode.PROTOCOL_ERROR
    assert "too many CALLs" in refused.answer.description
    rpc.answered(working)  # the first waiting one is now being answered: one place is free
    received(rpc, "late")
    assert isinstance(rpc.receive(frame(2, "later", "Heartbeat", {})), CallRefused)
    for event in waiting:
        rpc.answered(event)
    # all answered but "late": nothing waits, the next one is answered at once
    received(rpc, "next")
    assert isinstance(rpc.receive(frame(2, "next2", "Heartbeat", {})), CallReceived)


def test_waiting_calls_are_bounded_in_bytes_beyond_the_first() -> None:
    rpc = state()
    junk = "x" * (60 * 1024)
    working = received(rpc, "working", junk=junk)  # being answered: not counted
    received(rpc, "w1", junk=junk)
    received(rpc, "w2", junk=junk)  # 120 KiB wait
    refused = rpc.receive(frame(2, "w3", "Heartbeat", {"junk": junk}))
    assert isinstance(refused, CallRefused)
    assert str(MAX_QUEUED_BYTES) in refused.answer.description
    received(rpc, "small")  # what fits still waits
    rpc.answered(working)  # w1 is taken up: its bytes no longer wait
    received(rpc, "w3", junk=junk)


def test_a_single_waiting_call_may_be_larger_than_the_byte_bound() -> None:
    rpc = state()
    received(rpc, "working")
    big = "x" * (MAX_QUEUED_BYTES + 1)
    received(rpc, "big", junk=big)
    assert isinstance(rpc.receive(frame(2, "more", "Heartbeat", {})), CallRefused)


# --- frames that do not decode ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "code", "answer_id"),
    [
        ("not json", ErrorCode.FORMATION_VIOLATION, "-1"),
        ('{"a": 1}', ErrorCode.FORMATION_VIOLATION, "-1"),
        ('[2, "m1", "Heartbeat"]', ErrorCode.PROTOCOL_ERROR, "m1"),
        ('[2, "m1", "Heartbeat", []]', ErrorCode.FORMATION_VIOLATION, "m1"),
        ('["2", "m1", "Heartbeat", {}]', ErrorCode.FORMATION_VIOLATION, "m1"),
    ],
)
def test_unreadable_frames_are_answered_now(text: str, code: ErrorCode, answer_id: str) -> None:
    rpc = state()
    event = rpc.receive(text)
    assert isinstance(event, BadFrame)
    assert event.answer is not None
    assert (event.answer.message_id, event.answer.error_code) == (answer_id, code)


def test_a_binary_frame_is_a_formation_violation_even_when_it_reads() -> None:
    event = state().receive(b'[2, "b1", "Heartbeat", {}]')
    assert isinstance(event, BadFrame) and event.answer is not None
    assert (event.answer.message_id, event.answer.error_code) == (
        "b1",
        ErrorCode.FORMATION_VIOLATION,
    )


@pytest.mark.parametrize("text", ['[3, "x", []]', '[4, "x", 5, "d", {}]', '[3, "x"]'])
def test_unreadable_answers_are_never_answered(text: str) -> None:
    event = state().receive(text)
    assert isinstance(event, BadFrame)
    assert event.answer is None


def test_an_unknown_message_type_is_ignored() -> None:
    assert state().receive('[5, "x", {}]') == FrameIgnored(5)


# --- our CALLs ----------------------------------------------------------------------------


def test_one_outstanding_call_and_its_answer() -> None:
    rpc = state()
    call = rpc.start_call("GetConfiguration", {})
    assert call.message_id == "us-1"
    with pytest.raises(LocalProtocolError, match="GetConfiguration is still outstanding"):
        rpc.start_call("Reset", {"type": "Hard"})
    text = frame(3, "us-1", {"configurationKey": []})
    event = rpc.receive(text)
    assert event == AnswerReceived(
        CallResult("us-1", {"configurationKey": []}), "GetConfiguration", len(text)
    )
    assert rpc.outstanding is None
    # a second answer with the same id is a stray: the first one ended the call
    assert isinstance(rpc.receive(text), AnswerDropped)
    assert rpc.start_call("Reset", {"type": "Hard"}).message_id == "us-2"


def test_a_call_error_answers_our_call_too() -> None:
    rpc = state()
    call = rpc.start_call("Reset", {"type": "Soft"})
    event = rpc.receive(frame(4, call.message_id, "NotSupported", "no", {}))
    assert isinstance(event, AnswerReceived)
    assert event.answer == CallError(call.message_id, "NotSupported", "no", {})


def test_an_answer_after_the_driver_gave_up_is_dropped() -> None:
    rpc = state()
    call = rpc.start_call("Reset", {"type": "Soft"})
    rpc.end_call(call.message_id)  # timed out, say
    rpc.end_call(call.message_id)  # idempotent
    assert isinstance(rpc.receive(frame(3, call.message_id, {})), AnswerDropped)


def test_an_answer_to_someone_else_is_dropped_and_ours_still_waits() -> None:
    rpc = state()
    call = rpc.start_call("Reset", {"type": "Soft"})
    assert isinstance(rpc.receive(frame(3, "not-ours", {})), AnswerDropped)
    assert rpc.outstanding is not None and rpc.outstanding.message_id == call.message_id
    assert isinstance(rpc.receive(frame(3, "not-ours", [])), BadFrame)  # broken, not ours
    assert rpc.outstanding is not None


def test_an_unreadable_answer_with_our_id_ends_our_call() -> None:
    rpc = state()
    call = rpc.start_call("ClearCache", {})
    event = rpc.receive(frame(3, call.message_id, "not an object"))
    assert isinstance(event, BrokenAnswer)
    assert event.action == "ClearCache"
    assert event.error.code == ErrorCode.FORMATION_VIOLATION
    assert rpc.outstanding is None


def test_close_hands_back_the_outstanding_call_and_refuses_more() -> None:
    rpc = state()
    call = rpc.start_call("ClearCache", {})
    outstanding = rpc.close()
    assert outstanding is not None and outstanding.message_id == call.message_id
    assert rpc.closed
    with pytest.raises(LocalProtocolError, match="closed"):
        rpc.start_call("ClearCache", {})


def test_ids_of_our_calls_differ_across_connections() -> None:
    first, second = RpcState(HANDLED), RpcState(HANDLED)
    assert (
        first.start_call("ClearCache", {}).message_id
        != second.start_call("ClearCache", {}).message_id
    )


# --- the dialect decides the actions and the spellings -----------------------------------


def renamed_dialect() -> Dialect:
    """OCPP 1.6's actions with 2.0.1's spelling of FormationViolation sent, and a Request
    suffix on request schemas: what a second dialect changes."""
    return dataclasses.replace(
        OCPP16,
        name="test dialect",
        charge_point_initiated=OCPP16.charge_point_initiated | {"NotifyEvent"},
        request_schema_suffix="Request",
        sent_error_spellings=MappingProxyType({ErrorCode.FORMATION_VIOLATION: "FormatViolation"}),
    )


def test_the_dialect_spells_the_codes_we_send_and_names_the_actions() -> None:
    dialect = renamed_dialect()
    rpc = RpcState({"NotifyEvent"}, dialect=dialect)
    event = rpc.receive("[2, 5]")
    assert isinstance(event, BadFrame) and event.answer is not None
    assert event.answer.error_code == "FormatViolation"
    known = received(rpc, "n1", "NotifyEvent")
    assert rpc.refusal(known.call) is None
    # the same frame under OCPP 1.6: an action it does not have
    plain = state()
    assert plain.refusal(received(plain, "n1", "NotifyEvent").call) == CallError(
        "n1", ErrorCode.NOT_IMPLEMENTED, "unknown action 'NotifyEvent'"
    )


def test_ocpp16_reads_the_201_spellings_and_sends_its_own() -> None:
    assert OCPP16.parse_error_code("FormatViolation") is ErrorCode.FORMATION_VIOLATION
    assert OCPP16.parse_error_code("FormationViolation") is ErrorCode.FORMATION_VIOLATION
    assert OCPP16.parse_error_code("Nonsense") is None
    assert OCPP16.spelling(ErrorCode.OCCURENCE_CONSTRAINT_VIOLATION) == (
        "OccurenceConstraintViolation"
    )
    assert (OCPP16.name, OCPP16.subprotocol, len(OCPP16.actions)) == ("OCPP 1.6", "ocpp1.6", 39)
    assert OCPP16.actions == OCPP16.charge_point_initiated | OCPP16.central_system_initiated
    assert "DataTransfer" in OCPP16.charge_point_initiated & OCPP16.central_system_initiated


def test_schema_file_names_round_trip_through_the_dialect() -> None:
    for dialect in (OCPP16, renamed_dialect()):
        for direction in Direction:
            name = dialect.schema_name("Heartbeat", direction)
            assert dialect.action_of(name.removesuffix(".json")) == ("Heartbeat", direction)
    assert OCPP16.schema_name("Heartbeat", Direction.REQUEST) == "Heartbeat.json"
    assert OCPP16.schema_file("Heartbeat", Direction.RESPONSE).is_file()


# --- nothing a peer sends breaks the state ------------------------------------------------


@given(st.one_of(st.text(), st.binary()))
def test_any_message_makes_exactly_one_event(message: str | bytes) -> None:
    rpc = state()
    rpc.start_call("ClearCache", {})
    assert isinstance(rpc.receive(message), Event)


def test_wire_size_counts_utf8_bytes() -> None:
    assert wire_size("abc") == 3
    assert wire_size("Zoë") == 4
    assert wire_size(b"\xff\x00") == 2
