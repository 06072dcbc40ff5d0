"""What an OpenAI-compatible server serves: model name, local root (tokenizer) and context length."""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

PROBE_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class ServerInfo:
    model: str  # served model name
    root: str  # vLLM's `root` field: the model path or hub name it was loaded from ("" if absent)
    max_model_len: int | None  # context length in tokens, if the server says


def describe_server(base_url: str, model: str | None = None, timeout_s: float = PROBE_TIMEOUT_S) -> ServerInfo:
    """GET {base_url}/v1/models and pick `model` (default: the first one); clear errors if absent."""
    url = base_url.rstrip("/").removesuffix("/v1") + "/v1/models"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as r:
            data = json.load(r)["data"]
    except (urllib.error.URLError, OSError, KeyError, ValueError) as e:
        raise ConnectionError(f"cannot list models at {url}: {e}") from e
    names = [m.get("id") for m in data]
    if not data:
        raise ValueError(f"{url} lists no models")
    if model is None:
        m = data[0]
    elif model in names:
        m = data[names.index(model)]
    else:
        raise ValueError(f"model {model!r} is not served at {url}; served: {names}")
    return ServerInfo(model=m["id"], root=m.get("root") or "", max_model_len=m.get("max_model_len"))


def wait_until_ready(base_url: str, timeout_s: float, model: str | None = None) -> ServerInfo:
    """Poll /v1/models until it answers (or raise TimeoutError after timeout_s seconds)."""
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            return describe_server(base_url, model, timeout_s=min(PROBE_TIMEOUT_S, timeout_s))
        except (ConnectionError, ValueError) as e:
            last = e
            time.sleep(1.0)
    raise TimeoutError(f"{base_url} not ready after {timeout_s:.0f} s: {last}")


# deploy/config.yaml's `cache_dir`: where our app writes its built-in models
DEFAULT_MODEL_CACHE = "~/.cache/sparse24/models"


def local_model_dir(root: str, cache_dir: str = DEFAULT_MODEL_CACHE) -> str:
    """A local directory holding the served model's tokenizer.

    `root` itself when it is a directory (vLLM's own server reports the model path); our app reports its
    built-in source names (e.g. `tiny-dense`), which resolve to the same deterministic model in our model
    cache (created there in seconds if absent). Anything else is returned unchanged.
    """
    if root and Path(root).expanduser().is_dir():
        return root
    try:
        from ..kernels.checkpoint.model_source import BUILTIN_SOURCES
    except ImportError:
        return root
    if root in BUILTIN_SOURCES:
        from ..kernels.checkpoint.model_source import resolve_model_source

        return resolve_model_source(root, cache_dir)
    return root
