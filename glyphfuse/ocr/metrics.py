"""Text-accuracy metrics: the one home of CER, exact match and the ranker's trigram similarity.

Definitions follow docs/design.md §4:

* :func:`normalize_text` — runs of whitespace (spaces, tabs, newlines) become one space, ends stripped.
* :func:`cer` — Levenshtein distance(ocr, prompt) / len(prompt) on normalised text.
* :func:`exact` — normalised OCR equals normalised prompt (``exact_ci``: the same, case-folded).
* :func:`trigram_similarity` — multiset Jaccard of character trigrams, line layout kept.
* :func:`summarize` — mean CER, exact and exact_ci over result rows.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Iterable, Mapping

_WHITESPACE_RUN = re.compile(r"\s+")

# Two distinct sentinels pad the trigram string so the first and last characters of a text
# appear in as many trigrams as the middle ones (and beginning/end are told apart).
_BEGIN, _END = "\x02", "\x03"


def normalize_text(text: str, case_insensitive: bool = False) -> str:
    """Collapse every run of whitespace (spaces, tabs, newlines) into one space and strip the ends.

    With ``case_insensitive`` the result is also case-folded (``str.casefold``).
    """
    text = _WHITESPACE_RUN.sub(" ", text).strip()
    return text.casefold() if case_insensitive else text


def levenshtein(a: str, b: str) -> int:
    """Edit distance (insertions, deletions, substitutions all cost 1) between two strings."""
    if len(a) < len(b):
        a, b = b, a  # keep the row (len(b) + 1) the short one
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, start=1):
        current = [i]
        for j, char_b in enumerate(b, start=1):
            current.append(min(
                previous[j] + 1,                          # delete char_a
                current[j - 1] + 1,                       # insert char_b
                previous[j - 1] + (char_a != char_b),     # substitute (or match)
            ))
        previous = current
    return previous[-1]


def cer(ocr: str, prompt: str, case_insensitive: bool = False) -> float:
    """Character error rate: levenshtein(ocr, prompt) / len(prompt), both whitespace-normalised.

    Case-sensitive unless ``case_insensitive``. It can exceed 1 when the OCR reads much more text
    than the prompt has. Empty prompt (after normalising): 0.0 when the OCR is empty too, else 1.0
    (any text where none was asked for counts as one whole error, not an infinite rate).
    """
    ocr = normalize_text(ocr, case_insensitive)
    prompt = normalize_text(prompt, case_insensitive)
    if not prompt:
        return 0.0 if not ocr else 1.0
    return levenshtein(ocr, prompt) / len(prompt)


def exact(ocr: str, prompt: str, case_insensitive: bool = False) -> bool:
    """True when the normalised OCR equals the normalised prompt (case-folded if asked)."""
    return normalize_text(ocr, case_insensitive) == normalize_text(prompt, case_insensitive)


def _trigrams(text: str) -> Counter:
    """Multiset of character trigrams of ``text`` with each line stripped and sentinel padding."""
    lines = "\n".join(line.strip(" \t") for line in text.split("\n"))
    padded = _BEGIN * 2 + lines + _END * 2
    return Counter(padded[i:i + 3] for i in range(len(padded) - 2))


def trigram_similarity(prompt: str, ocr: str) -> float:
    """The ranker's score: multiset trigram Jaccard |A ∩ B| / (|A| + |B| - |A ∩ B|), in [0, 1].

    Each line's leading/trailing spaces are stripped; interior spaces and newlines stay (so line
    breaks count). The whole string is padded with two sentinels at each end. Case-sensitive.
    Worked cases: ("hello\\nworld", "hello world") -> 10/16; ("hello\\nworld", "helo\\nwrld") -> 8/16.
    Two empty strings score 1.0 (their sentinel trigrams match).
    """
    a, b = _trigrams(prompt), _trigrams(ocr)
    shared = sum((a & b).values())
    union = sum(a.values()) + sum(b.values()) - shared
    return shared / union if union else 1.0


def summarize(rows: Iterable[Mapping]) -> dict:
    """Mean CER / exact / exact_ci over result rows, each a mapping with ``ocr`` and ``prompt``.

    Rows with an ``error`` (a truthy value) or without an OCR text are skipped and counted in
    ``errors``. Returns ``{"n", "errors", "cer", "exact", "exact_ci"}`` (means are NaN when n == 0).
    """
    n = errors = 0
    total_cer = total_exact = total_exact_ci = 0.0
    for row in rows:
        if row.get("error") or row.get("ocr") is None or row.get("prompt") is None:
            errors += 1
            continue
        n += 1
        total_cer += cer(row["ocr"], row["prompt"])
        total_exact += exact(row["ocr"], row["prompt"])
        total_exact_ci += exact(row["ocr"], row["prompt"], case_insensitive=True)
    nan = float("nan")
    return {
        "n": n,
        "errors": errors,
        "cer": total_cer / n if n else nan,
        "exact": total_exact / n if n else nan,
        "exact_ci": total_exact_ci / n if n else nan,
    }
