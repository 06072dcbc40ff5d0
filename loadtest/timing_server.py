"""An OpenAI-shaped streaming server whose timing is known: the ground truth for checking load clients.

Every streamed request gets its first chunk `ttft_ms` after the request arrived and one chunk every `itl_ms`
after that (scheduled on absolute times, so a late write does not shift the rest), one token per chunk, then
the usage message and `[DONE]` (vLLM's completion and chat chunk shapes, `stream_options.include_usage`).
The server records when it actually wrote each chunk (`time.monotonic()`, the clock load clients on this
machine read too) and, on `GET /truth`, returns those records: a client's TTFT / ITL can then be compared with
what the server did, request by request, which a model server cannot tell you.

Plain asyncio (HTTP/1.1, keep-alive, chunked transfer), one process, no framework: its own cost per chunk is a
few microseconds, far below what it is used to measure. Requests are matched to records by their prompt text
(the checker sends unique prompts).

    python -m sparse24.loadtest.timing_server --port 8390 --ttft-ms 20 --itl-ms 5
"""
from __future__ import annotations

import argparse
import asyncio
import json
import time

MODEL = "timing"
_MAX_HEADER_BYTES = 65536


class TimingServer:
    def __init__(self, ttft_ms: float, itl_ms: float):
        if ttft_ms < 0 or itl_ms <= 0:
            raise ValueError(f"need ttft_ms >= 0 and itl_ms > 0, got {ttft_ms}, {itl_ms}")
        self.ttft_s, self.itl_s = ttft_ms / 1000.0, itl_ms / 1000.0
        self.records: dict[str, dict] = {}  # prompt -> {received_s, chunk_s: [...]}

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await self._one_request(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away: its record keeps what was written
        finally:
            writer.close()

    async def _one_request(self, reader, writer) -> bool:
        head = await reader.readuntil(b"\r\n\r\n")
        received = time.monotonic()
        if len(head) > _MAX_HEADER_BYTES:
            raise ConnectionError("header too large")
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:] if ":" in ln)}
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        if method == "GET" and path == "/v1/models":
            return await self._json(writer, {"object": "list", "data": [
                {"id": MODEL, "object": "model", "root": "", "max_model_len": 1 << 20}]})
        if method == "GET" and path == "/truth":
            return await self._json(writer, {"ttft_ms": self.ttft_s * 1e3, "itl_ms": self.itl_s * 1e3,
                                             "records": self.records})
        if method == "POST" and path == "/truth/reset":
            self.records = {}
            return await self._json(writer, {"ok": True})
        if method == "POST" and path in ("/v1/completions", "/v1/chat/completions"):
            return await self._stream(writer, json.loads(body), path.endswith("chat/completions"), received)
        return await self._json(writer, {"error": {"message": f"{method} {path}: not found"}}, 404)

    async def _json(self, writer, obj: dict, status: int = 200) -> bool:
        data = json.dumps(obj).encode()
        writer.write(f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
                     .encode() + data)
        await writer.drain()
        return True

    async def _stream(self, writer, req: dict, chat: bool, received: float) -> bool:
        n = int(req.get("max_completion_tokens") or req.get("max_tokens") or 16)
        prompt = json.dumps(req["messages"]) if chat else str(req.get("prompt"))
        rec = self.records[prompt] = {"received_s": received, "chunk_s": []}
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
        kind = "chat.completion.chunk" if chat else "text_completion"
        for i in range(n):
            delay = received + self.ttft_s + i * self.itl_s - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            choice = {"index": 0, "delta": {"content": "a"}} if chat else {"index": 0, "text": "a"}
            choice.update(logprobs=None, finish_reason="length" if i == n - 1 else None)
            _write_event(writer, {"id": "x", "object": kind, "created": 0, "model": MODEL, "choices": [choice]})
            rec["chunk_s"].append(time.monotonic())
            await writer.drain()
        usage = {"prompt_tokens": 1, "completion_tokens": n, "total_tokens": n + 1}
        _write_event(writer, {"id": "x", "object": kind, "created": 0, "model": MODEL, "choices": [], "usage": usage})
        writer.write(_chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n")
        await writer.drain()
        return True


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def _write_event(writer, obj: dict) -> None:
    writer.write(_chunk(b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"))


async def serve(port: int, ttft_ms: float, itl_ms: float) -> None:
    srv = TimingServer(ttft_ms, itl_ms)
    server = await asyncio.start_server(srv.handle, "127.0.0.1", port, backlog=4096)
    async with server:
        await server.serve_forever()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--ttft-ms", type=float, default=20.0)
    ap.add_argument("--itl-ms", type=float, default=5.0)
    a = ap.parse_args()
    try:
        import uvloop  # a faster event loop where installed (it is, with vLLM and Ray)
        uvloop.install()
    except ImportError:
        pass
    asyncio.run(serve(a.port, a.ttft_ms, a.itl_ms))


if __name__ == "__main__":
    main()
