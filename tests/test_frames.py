"""The sans-io framing layer: every framing row of the OCPP-J error-code table, and round trips."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from voltaro.ocppj.dialect import OCPP16
from voltaro.ocppj.errors import ErrorCode
from voltaro.ocppj.frames import (
    Call,
    CallError,
    CallResult,
    FrameError,
    UnknownFrame,
    decode,
    encode,
)


def decode_error(text: str | bytes) -> FrameError:
    with pytest.raises(FrameError) as caught:
        decode(text)
    return caught.value


def test_decodes_each_frame_type() -> None:
    assert decode('[2,"a1","Heartbeat",{}]') == Call("a1", "Heartbeat", {})
    assert decode('[3,"a1",{"currentTime":"x"}]') == CallResult("a1", {"currentTime": "x"})
    assert decode('[4,"a1","NotSupported","no",{}]') == CallError("a1", "NotSupported", "no", {})


@pytest.mark.parametrize(
    ("text", "code", "message_id", "words"),
    [
        ("not json", ErrorCode.FORMATION_VIOLATION, None, "not valid JSON"),
        ('{"a": 1}', ErrorCode.FORMATION_VIOLATION, None, "JSON array, got an object"),
        ("[]", ErrorCode.FORMATION_VIOLATION, None, "message type number"),
        ('["2","x","Heartbeat",{}]', ErrorCode.FORMATION_VIOLATION, "x", "message type number"),
        ("[true]", ErrorCode.FORMATION_VIOLATION, None, "message type number"),
        ('[2,7,"Heartbeat",{}]', ErrorCode.FORMATION_VIOLATION, None, "message id"),
        ('[2,"","Heartbeat",{}]', ErrorCode.FORMATION_VIOLATION, None, "must not be empty"),
        ('[2,"id1",5,{}]', ErrorCode.FORMATION_VIOLATION, "id1", "action"),
        ('[2,"id1","Heartbeat",[]]', ErrorCode.FORMATION_VIOLATION, "id1", "got an array"),
        ('[2,"id1","Heartbeat",{},1]', ErrorCode.FORMATION_VIOLATION, "id1", "has 5"),
        ('[2,"id1","Heartbeat"]', ErrorCode.PROTOCOL_ERROR, "id1", "has 3"),
        ("[2]", ErrorCode.FORMATION_VIOLATION, None, "message id"),
    ],
)
def test_framing_errors(text: str, code: ErrorCode, message_id: str | None, words: str) -> None:
    error = decode_error(text)
    assert error.code == code
    assert error.message_id == message_id
    assert words in error.description
    assert error.answerable


def test_message_id_longer_than_36_is_formation_violation_with_the_id() -> None:
    long_id = "x" * 37
    error = decode_error(f'[2,"{long_id}","Heartbeat",{{}}]')
    assert error.code == ErrorCode.FORMATION_VIOLATION
    assert error.message_id == long_id
    assert "37 characters" in error.description
    assert decode(f'[2,"{"x" * 36}","Heartbeat",{{}}]') == Call("x" * 36, "Heartbeat", {})


@pytest.mark.parametrize(
    "text", ['[3,"id1"]', '[3,"id1",[]]', '[4,"id1","x"]', '[4,"id1",1,"d",{}]']
)
def test_broken_answers_are_never_answerable(text: str) -> None:
    assert not decode_error(text).answerable


def test_unknown_message_type_is_ignored_not_an_error() -> None:
    assert decode('[7,"id1",{}]') == UnknownFrame(7)


def test_error_code_spellings() -> None:
    assert ErrorCode.OCCURENCE_CONSTRAINT_VIOLATION == "OccurenceConstraintViolation"
    assert ErrorCode.FORMATION_VIOLATION == "FormationViolation"
    assert OCPP16.parse_error_code("FormatViolation") is ErrorCode.FORMATION_VIOLATION
    assert (
        OCPP16.parse_error_code("OccurrenceConstraintViolation")
        is ErrorCode.OCCURENCE_CONSTRAINT_VIOLATION
    )
    assert OCPP16.parse_error_code("Nonsense") is None


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
payloads = st.dictionaries(st.text(max_size=12), json_values, max_size=5)
message_ids = st.text(min_size=1, max_size=36)
frames = st.one_of(
    st.builds(Call, message_ids, st.text(min_size=1, max_size=30), payloads),
    st.builds(CallResult, message_ids, payloads),
    st.builds(CallError, message_ids, st.text(max_size=30), st.text(max_size=60), payloads),
)


@given(frames)
def test_encode_decode_round_trip(frame: Call | CallResult | CallError) -> None:
    assert decode(encode(frame)) == frame


@given(st.binary(max_size=200) | st.text(max_size=200))
def test_decoding_anything_returns_a_frame_or_raises_frame_error(data: str | bytes) -> None:
    try:
        decode(data)
    except FrameError as error:
        assert isinstance(error.code, ErrorCode)
        assert error.description


@given(st.lists(json_values, max_size=6))
def test_any_json_array_decodes_or_raises_frame_error(array: list[object]) -> None:
    try:
        decode(orjson.dumps(array))
    except FrameError as error:
        assert error.description
