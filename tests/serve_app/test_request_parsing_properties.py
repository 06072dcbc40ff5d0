"""Property: the ingress parser (serve_app/requests.py, with vLLM's real request models) answers any body with a
parsed request or a 4xx `ApiError` carrying a message — never another exception (which the ingress turns into
a 500) — and a parsed request pickles (it crosses a Ray handle to the replica). No Ray, no engine: this is the
exact code path the ingress runs before a request reaches a replica.
"""
from __future__ import annotations

import json
import pickle

import pytest

pytest.importorskip("vllm")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from sparse24.serve_app.errors import ApiError  # noqa: E402
from sparse24.serve_app.requests import KINDS, parse_body, parse_request, resolve_model  # noqa: E402

pytestmark = pytest.mark.timeout(600)
MAX_BODY, MAX_DEPTH = 262_144, 64
SERVED = ["tiny", "tiny-dense"]
FIELDS = ["model", "prompt", "messages", "max_tokens", "temperature", "top_p", "n", "stop", "stream",
          "stream_options", "logprobs", "top_logprobs", "seed", "logit_bias", "presence_penalty", "tokens",
          "response_format", "tools", "tool_choice", "echo", "best_of", "min_tokens", "ignore_eos",
          "add_special_tokens", "return_token_strs", "prompt_logprobs", "chat_template", "suffix", "user"]
SETTINGS = settings(max_examples=150, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _outcome(body: bytes, kind: str) -> ApiError | None:
    """Run the ingress's parsing steps; None if the request parsed, the ApiError otherwise."""
    try:
        data = parse_body(body, MAX_BODY, MAX_DEPTH)
        resolve_model(data, SERVED)
        request = parse_request(kind, data)
    except ApiError as err:
        assert 400 <= err.status < 500, (err.status, err.message)
        assert isinstance(err.message, str) and err.message.strip(), err
        assert len(err.message) < 8_000  # a huge input is never echoed whole
        body_json = err.body()["error"]
        assert body_json["code"] == err.status and body_json["type"]
        return err
    pickle.loads(pickle.dumps(request))
    return None


_scalars = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
            | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=40))
_json_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=4)
                            | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=20)
_hostile_values = _json_values | st.sampled_from([
    -1, 0, 2**63, -(2**63) - 1, 10**30, 1e308, -1e308, 5e-324, "", " ", "\x00", "\u202e", "ten", [], {}, [[]],
    ["a"] * 500, list(range(300)), [{"role": "user"}], [{"role": "user", "content": None}],
    [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "file:///etc/passwd"}}]}],
    [{"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "nope"}]}],
    [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
    [{"role": "assistant", "tool_calls": [{"id": "1", "type": "function", "function": {"name": "f"}}]}],
    [{"role": "system", "content": "x"}], {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}},
    {"type": "nope"}, {"include_usage": "maybe"}, "{{ raise('x') }}",
])


@st.composite
def _request_like(draw) -> dict:
    """An object shaped like an OpenAI request with a few fields set to hostile values."""
    base = draw(st.sampled_from([
        {"model": "tiny", "prompt": "hi", "max_tokens": 4},
        {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4},
        {"model": "tiny", "tokens": [1, 2, 3]},
        {},
    ]))
    fields = draw(st.dictionaries(st.sampled_from(FIELDS), _hostile_values, max_size=4))
    return {**base, **fields}


def _nested(depth: int, open_: str, close: str) -> bytes:
    return (open_ * depth + close * depth).encode()


RAW_BODIES = [
    _nested(10_000, "[", "]"), _nested(100_000, "[", "]"), b'{"a":' * 5_000 + b"1" + b"}" * 5_000,
    b'{"model": "tiny", "messages": ' + _nested(3_000, "[", "]") + b"}",
    b'{"model": "tiny", "prompt": "' + b"[" * 50_000 + b'"}',  # brackets inside a string are not nesting
    b'{"model": "tiny", "prompt": "x", "max_tokens": ' + b"9" * 5_000 + b"}",
    b'{"model": "tiny", "prompt": "x", "temperature": NaN}', b'{"model": "tiny", "prompt": "x", "top_p": Infinity}',
    b'{"model": "tiny", "prompt": "\\ud800"}', b'{"model": "tiny", "prompt": "\\udfff\\ud800"}',
    b'{"model": "tiny", "prompt": "x", "stop": ' + json.dumps(["s"] * 500).encode() + b"}",
    b'{"model": "' + b"m" * 100_000 + b'", "prompt": "x"}', b"\xef\xbb\xbf{}", b"\x00" * 100, b"{" * 3,
    b'{"model": "tiny", "prompt": "x"} trailing', b'{"model": "tiny", "prompt": "x", "prompt": 5}',
    json.dumps({"model": "tiny", "prompt": [[1] * 10] * 2_000}).encode(), b" " * 1_000, b"nul", b"1e999999",
    b"\xff\xfe{\x00}\x00", "{\"model\": \"tiny\", \"prompt\": \"\u00e9\"}".encode("utf-16"),
]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("body", RAW_BODIES, ids=range(len(RAW_BODIES)))
def test_known_hostile_bodies_are_4xx_or_parsed(body, kind):
    _outcome(body, kind)


def test_deep_nesting_is_refused_before_parsing_with_its_depth():
    err = _outcome(_nested(10_000, "[", "]"), "chat")
    assert err is not None and err.status == 400 and "nested 10000 levels" in err.message


def test_too_many_stop_strings_names_the_count_not_the_type():
    err = _outcome(json.dumps({"model": "tiny", "prompt": "x", "stop": ["s"] * 500}).encode(), "completion")
    assert err is not None and err.param == "stop"
    assert "at most" in err.message and "500" in err.message and "valid string" not in err.message


@SETTINGS
@given(body=st.binary(max_size=2_000), kind=st.sampled_from(KINDS))
def test_any_bytes_are_4xx_or_parsed(body, kind):
    _outcome(body, kind)


@SETTINGS
@given(value=_json_values, kind=st.sampled_from(KINDS))
def test_any_json_value_is_4xx_or_parsed(value, kind):
    _outcome(json.dumps(value).encode(), kind)


@SETTINGS
@given(data=_request_like(), kind=st.sampled_from(KINDS))
def test_request_shaped_objects_with_hostile_fields_are_4xx_or_parsed(data, kind):
    _outcome(json.dumps(data).encode(), kind)


@SETTINGS
@given(depth=st.integers(1, 3_000), opener=st.sampled_from(["[", "{\"k\":"]), kind=st.sampled_from(KINDS))
def test_any_nesting_depth_is_4xx_or_parsed(depth, opener, kind):
    close = "]" if opener == "[" else "}"
    body = json.dumps({"model": "tiny", "prompt": "x"})[:-1] + ', "extra": '
    err = _outcome((body + opener * depth + "1" + close * depth + "}").encode(), kind)
    if depth >= MAX_DEPTH:
        assert err is not None and "levels" in err.message
