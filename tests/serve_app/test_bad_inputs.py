"""Bad requests get OpenAI-style 4xx JSON errors and never crash a replica (same engine pid before/after)."""
from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.timeout(600)

CHAT, COMP = "/v1/chat/completions", "/v1/completions"
MSG = [{"role": "user", "content": "hi"}]


def _chat(**kw):
    return {"model": "tiny", "messages": MSG, "max_tokens": 4, **kw}


def _comp(**kw):
    return {"model": "tiny", "prompt": "hi", "max_tokens": 4, **kw}


# (id, path, body: dict -> sent as JSON, bytes -> sent raw, expected HTTP status)
CASES = [
    ("malformed-json", CHAT, b'{"model": "tiny", "messages": [', 400),
    ("json-array-body", CHAT, b"[1, 2, 3]", 400),
    ("json-string-body", COMP, b'"just a string"', 400),
    ("empty-body", COMP, b"", 400),
    ("not-utf8", COMP, b"\xff\xfe\x00garbage", 400),
    ("chat-missing-messages", CHAT, {"model": "tiny", "max_tokens": 4}, 400),
    ("chat-messages-not-list", CHAT, _chat(messages="hello"), 400),
    ("chat-messages-empty", CHAT, _chat(messages=[]), 400),
    ("chat-message-bad-role", CHAT, _chat(messages=[{"role": 7, "content": "x"}]), 400),
    ("chat-content-wrong-type", CHAT, _chat(messages=[{"role": "user", "content": 12345}]), 400),
    ("comp-missing-prompt", COMP, {"model": "tiny", "max_tokens": 4}, 400),
    ("comp-empty-prompt", COMP, _comp(prompt=""), 400),
    ("comp-prompt-wrong-type", COMP, _comp(prompt={"text": "x"}), 400),
    ("prompt-longer-than-context", COMP, _comp(prompt="word " * 6000), 400),
    ("chat-prompt-longer-than-context", CHAT, _chat(messages=[{"role": "user", "content": "word " * 6000}]), 400),
    ("max-tokens-zero", COMP, _comp(max_tokens=0), 400),
    ("max-tokens-negative", CHAT, _chat(max_tokens=-5), 400),
    ("max-tokens-beyond-context", COMP, _comp(max_tokens=100_000), 400),
    ("max-tokens-string", COMP, _comp(max_tokens="ten"), 400),
    ("max-tokens-float", CHAT, _chat(max_tokens=1.5), 400),
    ("temperature-negative", COMP, _comp(temperature=-1), 400),
    ("temperature-string", CHAT, _chat(temperature="hot"), 400),
    ("top-p-zero", COMP, _comp(top_p=0), 400),
    ("top-p-above-one", CHAT, _chat(top_p=1.5), 400),
    ("n-zero", COMP, _comp(n=0), 400),
    ("n-negative", CHAT, _chat(n=-1), 400),
    ("unknown-model", COMP, _comp(model="no-such-model"), 404),
    ("model-wrong-type", CHAT, _chat(model=123), 400),
    ("stream-wrong-type", COMP, _comp(stream=[1]), 400),
    ("stop-wrong-type", COMP, _comp(stop=123), 400),
    ("logprobs-too-many", COMP, _comp(logprobs=100), 400),
    ("top-logprobs-too-many", CHAT, _chat(logprobs=True, top_logprobs=100), 400),
    ("presence-penalty-out-of-range", COMP, _comp(presence_penalty=5), 400),
    ("frequency-penalty-out-of-range", CHAT, _chat(frequency_penalty=-3), 400),
    ("seed-string", COMP, _comp(seed="abc"), 400),
    ("stream-options-without-stream", CHAT, _chat(stream_options={"include_usage": True}), 400),
    ("oversized-body", COMP, _comp(prompt="x" * 300_000), 413),
    # Issue 19: bodies that used to 500 or mislead, and JSON that is not standard JSON.
    ("nested-10000-levels", CHAT, b"[" * 10_000 + b"]" * 10_000, 400),
    ("nested-object-in-field", COMP, b'{"model": "tiny", "prompt": "x", "logit_bias": ' + b'{"a":' * 3000
     + b"1" + b"}" * 3001, 400),
    ("stop-500-strings", COMP, _comp(stop=["s"] * 500), 400),
    ("temperature-nan", COMP, b'{"model": "tiny", "prompt": "x", "temperature": NaN}', 400),
    ("top-p-infinity", CHAT, b'{"model": "tiny", "messages": [{"role": "user", "content": "x"}], "top_p": Infinity}',
     400),
    ("lone-surrogate", COMP, b'{"model": "tiny", "prompt": "\\ud800"}', 400),
    ("integer-5000-digits", COMP, b'{"model": "tiny", "prompt": "x", "max_tokens": ' + b"9" * 5000 + b"}", 400),
    ("max-tokens-2-pow-63", COMP, _comp(max_tokens=2**63), 400),
    ("prompt-token-id-out-of-vocab", COMP, _comp(prompt=[10_000_000]), 400),
    ("prompt-token-id-negative", COMP, _comp(prompt=[-1]), 400),
    ("model-name-100k-chars", COMP, _comp(model="m" * 100_000), 404),
    ("n-huge", COMP, _comp(n=10**9), 400),
    ("chat-content-part-bad-type", CHAT, _chat(messages=[{"role": "user", "content": [{"type": "nope"}]}]), 400),
    ("response-format-bad", CHAT, _chat(response_format={"type": "nope"}), 400),
    ("stream-options-string", CHAT, _chat(stream=True, stream_options="yes"), 400),
    ("tokenize-nested", "/tokenize", b'{"prompt": ' + b"[" * 2000 + b"]" * 2000 + b"}", 400),
]


@pytest.fixture(scope="module")
def pids_before(sv):
    import httpx

    health = httpx.get(f"{sv.base_url}/health", timeout=sv.timeout_s).json()["models"]
    return {m: health[m]["pid"] for m in (sv.main, sv.b)}


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_an_openai_4xx(http, pids_before, case):
    _, path, body, status = case
    if isinstance(body, dict):
        r = http.post(path, json=body)
    else:
        r = http.post(path, content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == status, r.text[:500]
    err = r.json()["error"]
    assert len(r.content) < 20_000  # hostile input is never echoed back whole
    assert err["code"] == status
    assert isinstance(err["message"], str) and err["message"]
    assert isinstance(err["type"], str) and err["type"]


@pytest.mark.parametrize("method,path,status", [
    ("GET", CHAT, 405), ("POST", "/v1/nope", 404), ("GET", "/v1/models/x/y", 404),
])
def test_wrong_route_or_method_is_an_openai_error(http, method, path, status):
    r = http.request(method, path)
    assert r.status_code == status
    assert r.json()["error"]["code"] == status


def test_wrong_content_type_is_415(http):
    r = http.post(COMP, content=json.dumps(_comp()), headers={"Content-Type": "text/plain"})
    assert r.status_code == 415
    assert r.json()["error"]["type"] == "UnsupportedMediaType"


def test_no_replica_crashed_after_bad_inputs(http, sv, pids_before):
    after = {m: sv.model_stats(http, m)["pid"] for m in (sv.main, sv.b)}
    assert after == pids_before
    r = http.post(COMP, json=_comp(max_tokens=3))
    assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] <= 3
