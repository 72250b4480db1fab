"""CLIP's byte-level BPE tokenizer in pure Python (no torch, no ftfy, no `regex`): prompt -> token ids.

The engine runs the CLIP text tower as ONNX (clip_text_encoder.onnx, input `tokens` (B, 77) int64), so it has
to tokenise by itself: open_clip's SimpleTokenizer imports torch (and ftfy, regex), which the engine must not
need. This is the same algorithm (OpenAI CLIP, MIT licence, as copied into open_clip) reading the same
vocabulary file, `bpe_simple_vocab_16e6.txt.gz` (exported beside the text encoder by training/export/clip.py,
a verbatim copy of open_clip's). Differences, both irrelevant for typed prompts: ftfy's mojibake repair is not
applied, and the `\\p{L}` / `\\p{N}` classes are spelled with Python's `re` (letters = `[^\\W\\d_]`, numbers
= `\\d`). tests/test_clip.py checks ids against open_clip's tokenizer.
"""
from __future__ import annotations

import gzip
import html
import os
import re
from functools import lru_cache

import numpy as np

CONTEXT_LENGTH = 77
SOT, EOT = "<start_of_text>", "<end_of_text>"


@lru_cache()
def bytes_to_unicode() -> dict[int, str]:
    """Reversible map of the 256 byte values to printable unicode characters (the BPE works on these)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def _pairs(word: tuple[str, ...]) -> set[tuple[str, str]]:
    return set(zip(word[:-1], word[1:]))


def clean(text: str) -> str:
    """open_clip's default 'lower' cleaning without ftfy: html-unescape twice, collapse whitespace, lower-case."""
    text = html.unescape(html.unescape(text)).strip()
    return " ".join(text.split()).strip().lower()


class ClipTokenizer:
    """Byte-level BPE over a CLIP vocabulary file (49,408 tokens with the two specials)."""

    def __init__(self, bpe_path: str | os.PathLike, context_length: int = CONTEXT_LENGTH):
        with gzip.open(bpe_path) as f:
            merges = f.read().decode("utf-8").split("\n")
        merges = [tuple(m.split()) for m in merges[1:49152 - 256 - 2 + 1]]
        vocab = list(bytes_to_unicode().values())
        vocab = vocab + [v + "</w>" for v in vocab] + ["".join(m) for m in merges] + [SOT, EOT]
        self.encoder = {t: i for i, t in enumerate(vocab)}
        self.bpe_ranks = {m: i for i, m in enumerate(merges)}
        self.byte_encoder = bytes_to_unicode()
        self.cache = {SOT: SOT, EOT: EOT}
        self.pattern = re.compile(re.escape(SOT) + "|" + re.escape(EOT) +
                                  r"""|'s|'t|'re|'ve|'m|'ll|'d|[^\W\d_]+|\d|(?:[^\s\w]|_)+""", re.IGNORECASE)
        self.sot_id, self.eot_id = self.encoder[SOT], self.encoder[EOT]
        self.context_length = context_length

    def bpe(self, token: str) -> str:
        if token in self.cache:
            return self.cache[token]
        word = tuple(token[:-1]) + (token[-1] + "</w>",)
        pairs = _pairs(word)
        if not pairs:
            return token + "</w>"
        while True:
            bigram = min(pairs, key=lambda p: self.bpe_ranks.get(p, float("inf")))
            if bigram not in self.bpe_ranks:
                break
            first, second = bigram
            new: list[str] = []
            i = 0
            while i < len(word):
                try:
                    j = word.index(first, i)
                except ValueError:
                    new.extend(word[i:])
                    break
                new.extend(word[i:j])
                i = j
                if word[i] == first and i < len(word) - 1 and word[i + 1] == second:
                    new.append(first + second)
                    i += 2
                else:
                    new.append(word[i])
                    i += 1
            word = tuple(new)
            if len(word) == 1:
                break
            pairs = _pairs(word)
        out = " ".join(word)
        self.cache[token] = out
        return out

    def encode(self, text: str) -> list[int]:
        ids: list[int] = []
        for token in self.pattern.findall(clean(text)):
            token = "".join(self.byte_encoder[b] for b in token.encode("utf-8"))
            ids.extend(self.encoder[t] for t in self.bpe(token).split(" "))
        return ids

    def __call__(self, texts: str | list[str]) -> np.ndarray:
        """Prompt(s) -> int64 (B, context_length): <sot> ids <eot> 0..., truncated with <eot> kept last."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        out = np.zeros((len(texts), self.context_length), np.int64)
        for i, text in enumerate(texts):
            ids = [self.sot_id] + self.encode(text) + [self.eot_id]
            if len(ids) > self.context_length:
                ids = ids[: self.context_length]
                ids[-1] = self.eot_id
            out[i, : len(ids)] = ids
        return out
