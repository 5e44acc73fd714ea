"""v2 request bodies are read by orjson where it reads what Python's own parser reads, and by the stdlib elsewhere:
the same values either way, and the same 400s."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway import codec_v2
from gateway.codec_v2 import parse_body
from gateway.errors import InvalidArgument

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(max_size=5), json_values, max_size=4))
def test_the_payload_is_what_the_stdlib_reads_value_for_value_and_type_for_type(payload: dict[str, object]) -> None:
    body = json.dumps(payload).encode()
    got, tail = parse_body(body, None)
    assert len(tail) == 0
    assert got == json.loads(body)
    assert _types(got) == _types(json.loads(body))  # 2**70 stays an int: an INT64 tensor must refuse it, not round it


def _types(value: object) -> object:
    if isinstance(value, dict):
        return {k: _types(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_types(v) for v in value]
    return type(value)


def test_long_integers_go_to_the_stdlib_and_stay_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    read_by_orjson = []
    real = codec_v2.orjson.loads
    monkeypatch.setattr(codec_v2.orjson, "loads", lambda raw: read_by_orjson.append(raw) or real(raw))
    assert parse_body(b'{"a": [1.5, 2]}', None)[0] == {"a": [1.5, 2]}
    assert parse_body(b'{"a": 18446744073709551616}', None)[0] == {"a": 2**64}
    assert read_by_orjson == [b'{"a": [1.5, 2]}']  # the 20-digit body never reached orjson


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b'{"a": NaN}', "NaN is not valid JSON"),
        (b'{"a": -Infinity}', "-Infinity is not valid JSON"),
        (b'{"a": [1,]}', "request body is not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b"[" * 5000 + b"]" * 5000, "nested too deeply"),
    ],
)
def test_what_orjson_refuses_gets_the_stdlib_s_answer(body: bytes, fragment: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_body(body, None)
    assert fragment in info.value.message


@pytest.mark.parametrize(
    "body",
    [
        b'{"a": "\\ud800"}',  # a lone surrogate: orjson refuses, Python reads it
        b'\xef\xbb\xbf{"a": 1}',  # a UTF-8 byte order mark
        '{"a": 1}'.encode("utf-16"),
    ],
)
def test_what_only_the_stdlib_reads_is_still_read(body: bytes) -> None:
    assert "a" in parse_body(body, None)[0]
