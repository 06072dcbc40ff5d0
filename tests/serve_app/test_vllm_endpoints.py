"""The auxiliary routes of vLLM's OpenAI server, through our ingress, against the real app (see conftest.py):
answers parse with vLLM's own response models, so a client of `vllm serve` sees the same schema here."""
from __future__ import annotations

import time

import pytest

pytestmark = pytest.mark.timeout(600)


def _protocol():
    from sparse24.serve_app import vllm_compat

    tok = pytest.importorskip("vllm.entrypoints.serve.tokenize.protocol")
    card_cls, _ = vllm_compat.model_card_classes()
    return tok, card_cls


def test_tokenize_detokenize_round_trip_in_vllm_schema(http, sv):
    tok, _ = _protocol()
    r = http.post("/tokenize", json={"model": sv.main, "prompt": "Hello world, again", "add_special_tokens": False})
    assert r.status_code == 200, r.text
    body = tok.TokenizeResponse.model_validate(r.json())
    assert body.count == len(body.tokens) > 0 and body.max_model_len == 2048
    r = http.post("/detokenize", json={"model": sv.main, "tokens": body.tokens})
    assert r.status_code == 200, r.text
    assert tok.DetokenizeResponse.model_validate(r.json()).prompt == "Hello world, again"


def test_tokenize_chat_messages_and_token_strings(http, sv):
    r = http.post("/tokenize", json={"model": sv.b, "messages": [{"role": "user", "content": "Hi"}],
                                     "return_token_strs": True})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["count"] == len(body["tokens"]) == len(body["token_strs"]) > 1


@pytest.mark.parametrize("path,body,status", [
    ("/tokenize", {"model": "no-such-model", "prompt": "x"}, 404),
    ("/tokenize", {"model": "tiny", "prompt": 12}, 400),
    ("/tokenize", b"[" * 10_000 + b"]" * 10_000, 400),
    ("/detokenize", {"model": "tiny", "tokens": "abc"}, 400),
    ("/detokenize", {"model": "tiny"}, 400),
])
def test_tokenize_routes_refuse_bad_input_like_the_others(http, path, body, status):
    if isinstance(body, bytes):
        r = http.post(path, content=body, headers={"Content-Type": "application/json"})
    else:
        r = http.post(path, json=body)
    assert r.status_code == status, r.text[:300]
    assert r.json()["error"]["code"] == status and r.json()["error"]["message"]


def test_tokenize_needs_the_api_key_version_and_ping_do_not(serve_app):
    import httpx

    r = httpx.post(f"{serve_app}/tokenize", json={"model": "tiny", "prompt": "x"}, timeout=30)
    assert r.status_code == 401
    version = httpx.get(f"{serve_app}/version", timeout=30)
    assert version.status_code == 200 and set(version.json()) == {"version"}
    from sparse24.serve_app.vllm_compat import vllm_version

    assert version.json()["version"] == vllm_version()
    for method in ("GET", "POST"):
        ping = httpx.request(method, f"{serve_app}/ping", timeout=30)
        assert ping.status_code == 200 and ping.content == b""


def test_model_cards_are_vllm_cards(http, sv):
    _, card_cls = _protocol()
    data = http.get("/v1/models").json()
    assert data["object"] == "list"
    cards = {c["id"]: c for c in data["data"]}
    assert sorted(cards) == sorted([sv.main, sv.b])
    for card in cards.values():
        parsed = card_cls.model_validate(card)
        assert parsed.owned_by == "vllm" and parsed.max_model_len == 2048
        assert [p.object for p in parsed.permission] == ["model_permission"]
        assert parsed.root and parsed.root.endswith(card["id"] if card["id"] != "tiny" else "tiny-sparse24-fp8")


def test_health_answers_within_one_second(serve_app):
    import httpx

    for _ in range(3):
        t = time.monotonic()
        r = httpx.get(f"{serve_app}/health", timeout=10)
        assert time.monotonic() - t < 1.0 and r.status_code == 200
