"""Metrics (docs/design.md §4) on hand-computed cases, and the rejection-sampling rules (§3)."""

import math
import random

import pytest

from glyphfuse.ocr.metrics import cer, exact, levenshtein, normalize_text, summarize, trigram_similarity
from glyphfuse.ocr.ranking import pick_best, prune_candidates, score_candidates


def test_normalize_text_collapses_whitespace_and_newlines():
    assert normalize_text("  hello \n\n  world\t! ") == "hello world !"
    assert normalize_text("") == ""
    assert normalize_text(" \n ") == ""
    assert normalize_text("Hello\nWORLD", case_insensitive=True) == "hello world"


@pytest.mark.parametrize("a, b, distance", [
    ("", "", 0), ("abc", "", 3), ("", "ab", 2), ("kitten", "sitting", 3), ("flaw", "lawn", 2), ("same", "same", 0),
])
def test_levenshtein(a, b, distance):
    assert levenshtein(a, b) == distance
    assert levenshtein(b, a) == distance


def test_cer_hand_computed():
    assert cer("hello world", "hello\nworld") == 0.0                 # newline == space after normalising
    assert cer("helo world", "hello world") == pytest.approx(1 / 11)  # one deletion over 11 chars
    assert cer("Hello", "hello") == pytest.approx(1 / 5)
    assert cer("Hello", "hello", case_insensitive=True) == 0.0
    assert cer("", "abcd") == 1.0
    assert cer("abcdabcd", "ab") == pytest.approx(6 / 2)           # may exceed 1


def test_cer_empty_prompt():
    assert cer("", "") == 0.0
    assert cer("  \n", " ") == 0.0
    assert cer("x", "") == 1.0
    assert cer("a long reading", "") == 1.0


def test_exact_and_case_insensitive():
    assert exact("the\nwhat  string", "the what string")
    assert not exact("The what string", "the what string")
    assert exact("The what string", "the what string", case_insensitive=True)
    assert exact("", "")
    assert not exact("a", "")


def test_trigram_similarity_worked_cases():
    assert trigram_similarity("hello\nworld", "hello world") == pytest.approx(10 / 16)
    assert trigram_similarity("hello\nworld", "helo\nwrld") == pytest.approx(8 / 16)


def test_trigram_similarity_properties():
    assert trigram_similarity("abc", "abc") == 1.0
    assert trigram_similarity("", "") == 1.0
    assert trigram_similarity("abc", "xyz") == 0.0
    assert trigram_similarity("Hello", "hello") < 1.0                     # case-sensitive
    assert trigram_similarity("  hello  \n world ", "hello\nworld") == 1.0  # line ends stripped
    assert trigram_similarity("hello world", "hello  world") < 1.0        # interior spaces kept
    assert trigram_similarity("ab", "ba") == trigram_similarity("ba", "ab")
    # multiset, not set: a repeated trigram counts twice
    assert trigram_similarity("aaaa", "aaa") < 1.0


def test_summarize_skips_error_rows():
    rows = [
        {"ocr": "hello", "prompt": "hello"},
        {"ocr": "Hellp", "prompt": "hello"},
        {"ocr": None, "prompt": "x", "error": "corrupt"},
    ]
    stats = summarize(rows)
    assert stats["n"] == 2 and stats["errors"] == 1
    assert stats["cer"] == pytest.approx((0 + 2 / 5) / 2)
    assert stats["exact"] == 0.5 and stats["exact_ci"] == 0.5
    assert math.isnan(summarize([])["cer"])


def test_score_candidates_uses_trigram_similarity():
    scores = score_candidates(["hello world", "helo\nwrld", "hello\nworld"], "hello\nworld")
    assert scores == pytest.approx([10 / 16, 8 / 16, 1.0])


def test_prune_candidates_rules():
    # best reaches keep_only_if_above: keep only those at or above it
    assert prune_candidates([0.9, 0.5, 0.8, 0.2], keep_only_if_above=0.8, delete_under=0.3) == [0, 2]
    # otherwise drop only those under delete_under
    assert prune_candidates([0.6, 0.2, 0.4], keep_only_if_above=0.8, delete_under=0.3) == [0, 2]
    # never drop them all: the best stays
    assert prune_candidates([0.1, 0.25, 0.05], keep_only_if_above=0.8, delete_under=0.3) == [1]
    assert prune_candidates([]) == []


def test_pick_best_first_on_ties():
    assert pick_best([0.2, 0.7, 0.7, 0.1]) == 1
    with pytest.raises(ValueError):
        pick_best([])


def test_prune_and_pick_never_prefer_a_lower_score():
    rng = random.Random(0)
    for _ in range(500):
        scores = [round(rng.random(), 2) for _ in range(rng.randint(1, 8))]
        keep_above, delete_under = sorted([rng.random(), rng.random()], reverse=True)
        kept = prune_candidates(scores, keep_only_if_above=keep_above, delete_under=delete_under)
        dropped = [i for i in range(len(scores)) if i not in kept]
        assert kept, scores
        assert kept == sorted(set(kept))
        assert all(scores[k] >= scores[d] for k in kept for d in dropped), (scores, kept)
        best = pick_best(scores)
        assert best in kept and all(scores[best] >= s for s in scores)
