"""Character-level tokenizer with a UTF-8 byte fallback.

Every character of Python's ``string.printable`` (letters, digits, punctuation, whitespace incl.
the newline) has its own id. Any other character is spelled as its UTF-8 bytes, one id per byte,
so every string (accents, emoji, CJK) can be encoded and decoded again without loss.

Id layout (``VOCAB_SIZE`` = 359)::

    0          PAD   padding; masked out everywhere (``TextBatch.mask`` is False)
    1          NULL  the classifier-free-guidance null input (a prompt given as ``None``)
    2          BOS   begin-of-text; every real prompt starts with it, "" is just [BOS]
    3 .. 258   one id per byte value (id = 3 + byte)
    259 .. 358 one id per character of string.printable

PAD and BOS are distinct on purpose: a system whose pad id equalled its BOS id masked BOS along
with the padding and made results depend on the batch. A row always holds at least one real
token (BOS or NULL), so attention over text keys never sees a fully masked row.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import Sequence

import torch

from glyphfuse.core.errors import GlyphfuseError

PAD_ID = 0
NULL_ID = 1
BOS_ID = 2
BYTE_OFFSET = 3  # id of byte value 0
CHAR_OFFSET = BYTE_OFFSET + 256  # id of string.printable[0]
CHARS = string.printable
VOCAB_SIZE = CHAR_OFFSET + len(CHARS)  # 359
DEFAULT_MAX_LINES = 32

_CHAR_TO_ID = {c: CHAR_OFFSET + i for i, c in enumerate(CHARS)}
NEWLINE_ID = _CHAR_TO_ID["\n"]


def _char_ids(ch: str) -> list[int]:
    """Ids of one character: its own id if printable, else one id per UTF-8 byte."""
    token = _CHAR_TO_ID.get(ch)
    if token is not None:
        return [token]
    return [BYTE_OFFSET + b for b in ch.encode("utf-8")]


def encode(text: str, max_length: int | None = None) -> list[int]:
    """[BOS] + the ids of ``text``. With ``max_length``, stop before the character that would
    make the sequence longer than ``max_length`` (a multi-byte character is never split)."""
    ids = [BOS_ID]
    for ch in text:
        char_ids = _char_ids(ch)
        if max_length is not None and len(ids) + len(char_ids) > max_length:
            break
        ids.extend(char_ids)
    return ids


def encoded_length(text: str) -> int:
    """Number of tokens ``encode(text)`` yields, BOS included."""
    return 1 + sum(len(_char_ids(ch)) for ch in text)


def decode(ids: Sequence[int]) -> str:
    """Inverse of :func:`encode`: skips PAD/NULL/BOS and re-assembles byte runs as UTF-8
    (invalid byte sequences become U+FFFD)."""
    raw = bytearray()
    for token in ids:
        token = int(token)
        if token < BYTE_OFFSET:
            continue
        if token < CHAR_OFFSET:
            raw.append(token - BYTE_OFFSET)
        elif token < VOCAB_SIZE:
            raw.extend(CHARS[token - CHAR_OFFSET].encode("ascii"))
        else:
            raise ValueError(f"token id {token} outside the vocabulary (0..{VOCAB_SIZE - 1})")
    return raw.decode("utf-8", errors="replace")


def line_ids_for(token_ids: torch.Tensor, max_lines: int = DEFAULT_MAX_LINES) -> torch.Tensor:
    """(B, L) token ids -> (B, L) line index: min(cumsum(token == newline), max_lines - 1).
    The newline token itself already carries the index of the line it starts."""
    return torch.cumsum(token_ids == NEWLINE_ID, dim=1).clamp(max=max_lines - 1)


@dataclass
class TextBatch:
    """A padded batch of tokenized prompts. All tensors are (B, L)."""

    token_ids: torch.Tensor  # long, PAD_ID where padded
    line_ids: torch.Tensor  # long
    mask: torch.Tensor  # bool, True = real token

    def __len__(self) -> int:
        return self.token_ids.shape[0]

    def to(self, device: torch.device | str) -> "TextBatch":
        return TextBatch(self.token_ids.to(device), self.line_ids.to(device), self.mask.to(device))

    def select(self, index) -> "TextBatch":
        """Rows by int, slice, list or index tensor (an int keeps the batch dimension)."""
        if isinstance(index, int):
            index = slice(index, index + 1)
        return TextBatch(self.token_ids[index], self.line_ids[index], self.mask[index])

    def pad_to(self, length: int) -> "TextBatch":
        """The same batch padded on the right to ``length`` tokens."""
        extra = length - self.token_ids.shape[1]
        if extra < 0:
            raise ValueError(f"cannot pad a batch of length {self.token_ids.shape[1]} to {length}")
        if extra == 0:
            return self
        pad = lambda t, value: torch.nn.functional.pad(t, (0, extra), value=value)  # noqa: E731
        return TextBatch(pad(self.token_ids, PAD_ID), pad(self.line_ids, 0), pad(self.mask, False))

    @staticmethod
    def cat(batches: Sequence["TextBatch"]) -> "TextBatch":
        """Concatenate along the batch, padding every part to the longest."""
        length = max(b.token_ids.shape[1] for b in batches)
        padded = [b.pad_to(length) for b in batches]
        return TextBatch(
            torch.cat([b.token_ids for b in padded]),
            torch.cat([b.line_ids for b in padded]),
            torch.cat([b.mask for b in padded]),
        )


def _preview(text: str, limit: int = 40) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


def tokenize(
    texts: Sequence[str | None],
    max_length: int,
    truncate: bool = False,
    max_lines: int = DEFAULT_MAX_LINES,
) -> TextBatch:
    """Encode prompts into a right-padded :class:`TextBatch`.

    ``None`` is the guidance null input ([NULL]); "" is the empty transcript ([BOS]). A prompt
    longer than ``max_length`` tokens (BOS included) is an error unless ``truncate`` is set.
    """
    if isinstance(texts, str):
        raise TypeError("tokenize expects a list of prompts, not a single string")
    if len(texts) == 0:
        raise GlyphfuseError("tokenize: no prompts given")
    rows: list[list[int]] = []
    for i, text in enumerate(texts):
        if text is None:
            rows.append([NULL_ID])
            continue
        if not isinstance(text, str):
            raise TypeError(f"prompt {i} is {type(text).__name__}, expected str or None")
        if not truncate:
            n = encoded_length(text)
            if n > max_length:
                raise GlyphfuseError(
                    f"prompt {i} {_preview(text)} is {n} tokens long (BOS included), more than the "
                    f"model's max_length {max_length}; shorten it or allow truncation"
                )
        rows.append(encode(text, max_length=max_length))
    length = max(len(r) for r in rows)
    token_ids = torch.full((len(rows), length), PAD_ID, dtype=torch.long)
    for i, row in enumerate(rows):
        token_ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
    mask = token_ids != PAD_ID
    return TextBatch(token_ids, line_ids_for(token_ids, max_lines), mask)
