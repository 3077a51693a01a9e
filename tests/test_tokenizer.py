"""Tokenizer: id layout, byte fallback, null vs empty, padding, line ids, length limits."""

import string

import pytest
import torch

from glyphfuse.core.errors import GlyphfuseError
from glyphfuse.core.tokenizer import (
    BOS_ID,
    BYTE_OFFSET,
    CHAR_OFFSET,
    NEWLINE_ID,
    NULL_ID,
    PAD_ID,
    VOCAB_SIZE,
    TextBatch,
    decode,
    encode,
    tokenize,
)


def test_id_layout():
    assert VOCAB_SIZE == 359
    assert len({PAD_ID, NULL_ID, BOS_ID}) == 3  # PAD != BOS: masking padding must never mask BOS
    assert (PAD_ID, NULL_ID, BOS_ID, BYTE_OFFSET, CHAR_OFFSET) == (0, 1, 2, 3, 259)
    assert encode("a") == [BOS_ID, CHAR_OFFSET + string.printable.index("a")]
    assert NEWLINE_ID == CHAR_OFFSET + string.printable.index("\n")
    ids = encode(string.printable)
    assert ids[1:] == list(range(CHAR_OFFSET, VOCAB_SIZE))


@pytest.mark.parametrize("text", ["Hello, World!\n2nd line\t", "😀 ok", "日本語のテキスト", "Ça coûte 5€", ""])
def test_round_trip(text):
    assert decode(encode(text)) == text


def test_byte_fallback_one_id_per_utf8_byte():
    ids = encode("😀")  # U+1F600 = F0 9F 98 80
    assert ids == [BOS_ID] + [BYTE_OFFSET + b for b in (0xF0, 0x9F, 0x98, 0x80)]
    ids = encode("日本")  # 3 bytes each
    assert len(ids) == 1 + 6
    assert all(BYTE_OFFSET <= i < CHAR_OFFSET for i in ids[1:])


def test_empty_transcript_differs_from_null():
    batch = tokenize(["", None], max_length=8)
    assert batch.token_ids.tolist() == [[BOS_ID], [NULL_ID]]
    assert batch.mask.tolist() == [[True], [True]]


def test_padding_and_mask():
    batch = tokenize(["ab", "a", None], max_length=8)
    assert batch.token_ids.shape == (3, 3)
    assert batch.token_ids[1].tolist() == [BOS_ID, CHAR_OFFSET + string.printable.index("a"), PAD_ID]
    assert batch.mask.tolist() == [[True, True, True], [True, True, False], [True, False, False]]
    assert batch.mask[:, 0].all()  # BOS / NULL are never masked
    assert decode(batch.token_ids[1].tolist()) == "a"


def test_line_ids():
    batch = tokenize(["a\nb\n\nc"], max_length=16)
    # BOS a \n b \n \n c
    assert batch.line_ids[0].tolist() == [0, 0, 1, 1, 2, 3, 3]
    clamped = tokenize(["a\nb\n\nc"], max_length=16, max_lines=2)
    assert clamped.line_ids[0].tolist() == [0, 0, 1, 1, 1, 1, 1]


def test_too_long_prompt_errors_or_truncates():
    with pytest.raises(GlyphfuseError, match=r"prompt 1 'abcdefgh' is 9 tokens .* max_length 6"):
        tokenize(["ok", "abcdefgh"], max_length=6)
    batch = tokenize(["ok", "abcdefgh"], max_length=6, truncate=True)
    assert batch.token_ids.shape == (2, 6)
    assert decode(batch.token_ids[1].tolist()) == "abcde"
    # truncation never splits a multi-byte character: "a😀" needs 1 + 1 + 4 tokens
    assert decode(tokenize(["a😀"], max_length=5, truncate=True).token_ids[0].tolist()) == "a"
    assert tokenize(["a😀"], max_length=6).token_ids.shape == (1, 6)


def test_textbatch_cat_select_to():
    a = tokenize(["abc"], max_length=8)
    b = tokenize(["x", None], max_length=8)
    both = TextBatch.cat([a, b])
    assert len(both) == 3 and both.token_ids.shape == (3, 4)
    assert both.select(1).token_ids.tolist() == [[BOS_ID, CHAR_OFFSET + string.printable.index("x"), PAD_ID, PAD_ID]]
    assert not both.mask[2, 1:].any()
    assert torch.equal(both.select(slice(1, 3)).mask, b.pad_to(4).mask)
    assert both.to("cpu").token_ids.device.type == "cpu"
