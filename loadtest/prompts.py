"""Prompts with an exact token count under the served model's own tokenizer.

The count that matters is the server's `usage.prompt_tokens`: for /v1/completions the text plus the special
tokens the tokenizer adds (BOS); for /v1/chat/completions the whole chat template around the text.
Every prompt is a different random token sequence, so the server's prefix cache cannot skip the prefill
(as in `vllm bench serve --dataset-name random`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

_MAX_FIX_ROUNDS = 8  # decode/re-encode rounds; byte-level BPE usually settles in 1-3
_TOP_UP_MARGIN = 4  # tokens left to the one-piece-at-a-time fallback
_TOP_UP_TRIES = 200  # pieces tried per appended token


def load_tokenizer(path: str | Path):
    """The HF tokenizer saved in a local model directory (no hub access)."""
    from transformers import AutoTokenizer

    p = Path(path).expanduser()
    if not p.is_dir():
        raise FileNotFoundError(f"tokenizer directory not found: {p} (give the served model's local directory)")
    return AutoTokenizer.from_pretrained(str(p), local_files_only=True)


class PromptSynthesizer:
    """Makes random prompts whose server-side prompt token count is exactly what is asked."""

    def __init__(self, tokenizer, api: str = "completions", seed: int = 0):
        self.tok = tokenizer
        self.api = api
        self.rng = np.random.default_rng(seed)
        special = set(tokenizer.all_special_ids)
        self.vocab = np.array([i for i in range(len(tokenizer)) if i not in special
                               and tokenizer.decode([i]).strip()], dtype=np.int64)
        if self.vocab.size < 16:
            raise ValueError(f"tokenizer has only {self.vocab.size} usable tokens; is this the right model dir?")
        self.overhead = self.count("")

    def count(self, text: str) -> int:
        """Prompt tokens the server will count for this text."""
        if self.api == "chat":
            ids = self.tok.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True,
                                               tokenize=True)
            if isinstance(ids, dict) or hasattr(ids, "keys"):
                ids = ids["input_ids"]
            return len(ids)
        return len(self.tok(text, add_special_tokens=True)["input_ids"])

    def make(self, n_tokens: int) -> str:
        """A fresh random prompt of exactly n_tokens server-side tokens."""
        body = n_tokens - self.overhead
        if body < 1:
            raise ValueError(f"a prompt of {n_tokens} tokens cannot hold text: the {self.api} format itself "
                             f"takes {self.overhead} tokens")
        ids = list(self.rng.choice(self.vocab, body))
        for round_ in range(_MAX_FIX_ROUNDS):
            text = self.tok.decode(ids)
            n = self.count(text)
            if n == n_tokens:
                return text
            enc = self.tok(text, add_special_tokens=False)["input_ids"]
            # keep the canonical encoding up to the body length and top up with fresh tokens; after a few
            # misses also re-draw the last two, since merges across the cut can oscillate
            keep = max(1, min(len(enc), body) - (2 if round_ >= 3 else 0))
            ids = enc[:keep] + list(self.rng.choice(self.vocab, max(0, body - keep)))
        return self._top_up(ids[:max(1, body - _TOP_UP_MARGIN)], n_tokens)

    def _top_up(self, ids: list[int], n_tokens: int) -> str:
        """Fallback: from a shorter text, append single vocabulary pieces that add exactly one token each."""
        text = self.tok.decode(ids)
        n = self.count(text)
        while n > n_tokens and ids:
            ids = ids[:-1]
            text, n = self.tok.decode(ids), self.count(self.tok.decode(ids))
        while n < n_tokens:
            for piece_id in self.rng.permutation(self.vocab)[:_TOP_UP_TRIES]:
                cand = text + self.tok.decode([int(piece_id)])
                c = self.count(cand)
                if c == n + 1:
                    text, n = cand, c
                    break
            else:
                break
        if n == n_tokens:
            return text
        raise RuntimeError(f"could not synthesize a prompt of exactly {n_tokens} tokens "
                           f"(reached {n})")
