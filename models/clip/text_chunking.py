"""Split a prompt that is longer than a text encoder's context into chunks that fit.

Why: CLIP-style text towers see at most ``context_length`` tokens (77 for OpenAI CLIP,
64 for SigLIP). Real prompts are often longer; cutting them silently drops content, and
crashing is worse. We split on sentence boundaries first, then on words, and only cut a
single over-long word by characters — each chunk is encoded and the unit vectors averaged.
"""

from __future__ import annotations

import re
from collections.abc import Callable

# A sentence ends at . ! ? ; or a line break; the punctuation stays with its sentence.
_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+|\s*\n+\s*")


def chunk_text(text: str, count_tokens: Callable[[str], int], max_tokens: int) -> list[str]:
    """Chunks of ``text`` each with ``count_tokens(chunk) <= max_tokens``.

    ``count_tokens`` must include the tokenizer's special tokens (start/end), so that
    ``max_tokens`` is simply the model's context length. A text that fits is returned
    unchanged as a single chunk.
    """
    if max_tokens < 3:
        raise ValueError(f"max_tokens must leave room for content (got {max_tokens})")

    def fits(s: str) -> bool:
        return count_tokens(s) <= max_tokens

    if fits(text):
        return [text]
    pieces: list[str] = []
    for sentence in _SENTENCE_END.split(text.strip()):
        sentence = sentence.strip()
        if not sentence:
            continue
        if fits(sentence):
            pieces.append(sentence)
        else:
            pieces.extend(_split_words(sentence, fits))
    return _merge(pieces, fits)


def _split_words(sentence: str, fits: Callable[[str], bool]) -> list[str]:
    """Greedy word packing; a word too long on its own is cut by characters."""
    words: list[str] = []
    for word in sentence.split():
        if fits(word):
            words.append(word)
        else:
            words.extend(_split_chars(word, fits))
    return _merge(words, fits)


def _split_chars(word: str, fits: Callable[[str], bool]) -> list[str]:
    out: list[str] = []
    cur = ""
    for ch in word:
        if cur and not fits(cur + ch):
            out.append(cur)
            cur = ch
        else:
            cur += ch
    if cur:
        out.append(cur)
    return out


def _merge(pieces: list[str], fits: Callable[[str], bool]) -> list[str]:
    """Join consecutive pieces with spaces while the result still fits."""
    chunks: list[str] = []
    cur = ""
    for piece in pieces:
        candidate = f"{cur} {piece}" if cur else piece
        if not cur or fits(candidate):
            cur = candidate
        else:
            chunks.append(cur)
            cur = piece
    if cur:
        chunks.append(cur)
    return chunks
