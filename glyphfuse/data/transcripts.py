"""What a synthetic image says: word lists, styles and data recipes, held-out tokens, random lines.

A :class:`SynthStyle` says what a dataset's images look like and say; the named data recipes
(:data:`DATA_RECIPES`, e.g. ``lines64``) are the styles the shipped models were trained on.
Transcripts come in two kinds:

* the full variety (``charset="printable"``, :func:`random_transcript`): 1-6 lines of common
  English words with realistic capitalisation, digits, punctuation and symbols;
* a charset style (:func:`styled_line`): tokens of one character set, a share ``random_fraction``
  of them uniformly random strings (spelling is then learned letter by letter, not word by word).

No token of the packaged held-out prompt sets (``glyphfuse/resources/prompts/``) is ever drawn:
:func:`is_held_out` tells the renderer to draw again.
"""

from __future__ import annotations

import dataclasses
import random
import string
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Callable, Sequence

from glyphfuse.core.controls import SCENE_KINDS
from glyphfuse.core.errors import GlyphfuseError
from glyphfuse.data.prompts import PROMPT_SETS, load_prompts, read_prompt_lines

MAX_LINES = 6  # most lines in one image
MAX_LINE_CHARS = 256  # most characters a line may be limited to (--line-chars)

# The most frequent English words; mixed with the larger word list so that lines read naturally.
COMMON_WORDS = (
    "the of and to a in is it you that he was for on are with as I his they be at one have this "
    "from or had by not word but what some we can out other were all there when up use your how "
    "said an each she which do their time if will way about many then them write would like so "
    "these her long make thing see him two has look more day could go come did number sound no "
    "most people my over know water than call first who may down side been now find any new work "
    "part take get place made live where after back little only round man year came show every "
    "good me give our under name very through just form great think say help low line before "
    "turn cause same mean move right boy old too does tell set three want air well also play "
    "small end put home read hand port large spell add even land here must big high such follow "
    "act why ask men change went light kind off need house picture try us again animal point "
    "mother world near build self earth father head stand own page should country found answer "
    "school grow study still learn plant cover food sun four thought let keep eye never last door"
).split()

PUNCTUATION_AFTER = (",", ",", ".", ".", "!", "?", ":", ";", "...")
ENCLOSING = (('"', '"'), ("(", ")"), ("'", "'"), ("[", "]"))
SYMBOL_TOKENS = ("&", "-", "+", "=", "/", "#1", "@", "*")


@lru_cache(maxsize=1)
def load_words() -> tuple[str, ...]:
    """The shipped word list (glyphfuse/resources/words.txt), one lowercase word a line."""
    text = resources.files("glyphfuse").joinpath("resources/words.txt").read_text(encoding="utf-8")
    return tuple(word for word in text.split() if word)


def load_text_file(path: str | Path) -> list[str]:
    """Transcripts from a text file: one per non-blank line; a literal ``\\n`` is a line break
    (the prompt-file reader, with '#' kept: a transcript may start with it)."""
    return read_prompt_lines(path, comments=False, what="text file")


# ------------------------------------------------------------------------------------------------
# Styles and named data recipes
# ------------------------------------------------------------------------------------------------

ALIGNMENTS = ("left", "center", "right", "random")
PLACEMENTS = ("fixed", "center", "random")
BACKGROUNDS = ("light", "random")
# The punctuation and symbols that signs and captions use: the ``ascii`` charset's extra characters.
SIGN_PUNCTUATION = ".,!?'\"-:;&%#@/()$+*="
CHARSETS = {
    "lower": string.ascii_lowercase,
    "letters": string.ascii_letters,
    "alnum": string.ascii_letters + string.digits,
    # words in three casings, numbers, prices, times, punctuation and symbols (ascii_token)
    "ascii": string.ascii_letters + string.digits + SIGN_PUNCTUATION,
    "printable": None,  # words with capitals, digits, punctuation and symbols (random_transcript)
}


@dataclass(frozen=True)
class SynthStyle:
    """What a dataset's images look like and say. The defaults are the full variety.

    * ``align``: each line's horizontal alignment (``random``: left, left, center or right);
    * ``placement``: ``fixed`` puts line k at the same height in every image (the block of the most
      lines is centred vertically) with a fixed left margin for left alignment, so a character's
      place depends only on its line and column; ``center`` centres the ink block; ``random``
      puts it anywhere;
    * ``background``: ``light`` (flat 200-255 with dark 0-60 text) or ``random`` lightness with
      either polarity (with --color: random colours);
    * ``charset`` and ``random_fraction``: the share of tokens that are uniformly random strings
      of ``string_length`` characters from the charset (spelling then is learned letter by
      letter); the other tokens are words. ``printable`` uses :func:`random_transcript`;
    * ``lines`` and ``tokens``: ranges (inclusive) of lines per image and tokens per line;
      ``None`` keeps the weighted defaults of :func:`random_transcript`;
    * ``line_chars``: most characters a line (``None``: whatever fits the canvas);
    * ``font_px``: font size range (px), ``None`` scales with the canvas; ``fonts``: font file
      names in the fonts folder, empty = all of them.
    """

    align: str = "random"
    placement: str = "random"
    background: str = "random"
    charset: str = "printable"
    random_fraction: float = 0.0
    string_length: tuple[int, int] = (2, 8)
    lines: tuple[int, int] | None = None
    tokens: tuple[int, int] | None = None
    line_chars: int | None = None
    font_px: tuple[int, int] | None = None
    fonts: tuple[str, ...] = ()
    size: int = 128  # the canvas the style is meant for (synth-fonts --size overrides)
    # colour scenes: each image is one of these kinds (glyphfuse.data.scenes), drawn uniformly;
    # () = flat backgrounds as ``background`` says
    scene_kinds: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        choices = (("align", self.align, ALIGNMENTS), ("placement", self.placement, PLACEMENTS),
                   ("background", self.background, BACKGROUNDS), ("charset", self.charset, tuple(CHARSETS)))
        for name, value, allowed in choices:
            if value not in allowed:
                raise GlyphfuseError(f"--{name} must be one of {', '.join(allowed)}, not {value!r}")
        if not 0.0 <= self.random_fraction <= 1.0:
            raise GlyphfuseError(f"--random-fraction must be between 0 and 1, not {self.random_fraction}")
        if self.random_fraction > 0 and self.charset == "printable":
            raise GlyphfuseError("--random-fraction needs --charset lower, letters, alnum or ascii (random strings are drawn from it)")
        ranges = (("lines", self.lines, MAX_LINES), ("tokens", self.tokens, 8), ("string-length", self.string_length, 32))
        for name, value, most in ranges:
            if value is not None and not (1 <= value[0] <= value[1] <= most):
                raise GlyphfuseError(f"--{name} must be MIN-MAX with 1 <= MIN <= MAX <= {most}, not {value[0]}-{value[1]}")
        unknown = sorted(set(self.scene_kinds) - set(SCENE_KINDS))
        if unknown:
            raise GlyphfuseError(f"--kinds: unknown scene kind(s) {', '.join(unknown)}; choose from {', '.join(SCENE_KINDS)}")
        if self.line_chars is not None and not 1 <= self.line_chars <= MAX_LINE_CHARS:
            raise GlyphfuseError(f"--line-chars must be between 1 and {MAX_LINE_CHARS}, not {self.line_chars}")

    def replace(self, **changes) -> "SynthStyle":
        """A copy with ``changes`` applied; ``None`` values are ignored (options not given)."""
        return dataclasses.replace(self, **{key: value for key, value in changes.items() if value is not None})


# The data the shipped models were trained on (docs/data.md has the measurements behind them).
DATA_RECIPES: dict[str, SynthStyle] = {
    # 64 px, one or two left-aligned lines at fixed heights, 1-2 lowercase tokens a line (half of
    # them random strings), one monospaced bold font at 10 px on a light background
    "lines64": SynthStyle(align="left", placement="fixed", background="light", charset="lower", random_fraction=0.5,
                          string_length=(2, 8), lines=(1, 2), tokens=(1, 2), font_px=(10, 10),
                          fonts=("DejaVuSansMono-Bold.ttf",), size=64),
    # 32 px, one centred lowercase token (half random strings) at 12 px on a light background
    "words32": SynthStyle(align="center", placement="center", background="light", charset="lower", random_fraction=0.5,
                          string_length=(3, 5), lines=(1, 1), tokens=(1, 1), font_px=(12, 12),
                          fonts=("OpenSans-CondBold.ttf",), size=32),
    # 128 px, 1-5 left-aligned lines at fixed heights of at most 16 characters: words in three
    # casings, numbers, prices, times, punctuation and symbols, a third of the tokens random
    # strings; one monospaced bold font at 11 px on a light background (the cascade's base data)
    "lines128": SynthStyle(align="left", placement="fixed", background="light", charset="ascii", random_fraction=0.35,
                           string_length=(2, 8), lines=(1, 5), tokens=(1, 3), line_chars=16, font_px=(11, 11),
                           fonts=("DejaVuSansMono-Bold.ttf",), size=128),
    # lines128's text, layout and font in colour scenes of every kind (glyphfuse.data.scenes): the
    # colour cascade's base data
    "scenes128": SynthStyle(align="left", placement="fixed", background="light", charset="ascii", random_fraction=0.35,
                            string_length=(2, 8), lines=(1, 5), tokens=(1, 3), line_chars=16, font_px=(11, 11),
                            fonts=("DejaVuSansMono-Bold.ttf",), size=128, scene_kinds=SCENE_KINDS),
    # the full variety: random placement, lightness, fonts, sizes, capitals, digits, punctuation
    "full": SynthStyle(),
}


def get_data_recipe(name: str) -> SynthStyle:
    """The named data recipe; a one-line error listing the names otherwise."""
    if name not in DATA_RECIPES:
        raise GlyphfuseError(f"unknown data recipe {name!r}; choose one of: {', '.join(DATA_RECIPES)}")
    return DATA_RECIPES[name]


def parse_range(text: str, option: str) -> tuple[int, int]:
    """"2-5" (or "3") -> (2, 5); a one-line error naming ``option`` otherwise."""
    low, _, high = str(text).partition("-")
    try:
        return int(low), int(high or low)
    except ValueError:
        raise GlyphfuseError(f"{option} must look like 2-5 or 3, not {text!r}") from None


# ------------------------------------------------------------------------------------------------
# Held-out tokens: never drawn, so eval measures words the model has never seen
# ------------------------------------------------------------------------------------------------

NOT_HELD_OUT = ("original.txt", "readme.txt")  # the original system's test prompt and the README's example: ordinary training words


def token_key(token: str) -> str:
    """A token as the held-out check compares it: lowercase, surrounding punctuation removed."""
    return token.strip(string.punctuation).lower()


@lru_cache(maxsize=1)
def held_out_tokens() -> frozenset[str]:
    """Every token with a letter of the packaged eval prompt sets (glyphfuse/resources/prompts/
    *.txt): synth never renders them, so eval measures spelling of words the model has never
    seen. Letterless tokens (numbers, prices, symbols) are not words to memorise: holding out
    "2" or "$5" would only keep those digits out of training."""
    tokens = set()
    for name in PROMPT_SETS:
        if f"{name}.txt" not in NOT_HELD_OUT:
            prompts, _ = load_prompts(name)
            keys = (token_key(token) for prompt in prompts for token in prompt.split())
            tokens.update(key for key in keys if any(char.isalpha() for char in key))
    return frozenset(tokens)


def is_held_out(lines: Sequence[str]) -> bool:
    """True when any token of ``lines`` belongs to a held-out prompt set."""
    held_out = held_out_tokens()
    return any(token_key(token) in held_out for line in lines for token in line.split())


# ------------------------------------------------------------------------------------------------
# Random transcripts: the full variety
# ------------------------------------------------------------------------------------------------


def _random_number(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.35:
        return str(rng.randint(0, 99))
    if kind < 0.55:
        return str(rng.randint(1900, 2030))
    if kind < 0.65:
        return f"${rng.randint(1, 999)}.{rng.randint(0, 99):02d}"
    if kind < 0.75:
        return f"{rng.randint(1, 100)}%"
    if kind < 0.85:
        return f"{rng.randint(0, 23)}:{rng.randint(0, 59):02d}"
    return str(rng.randint(100, 99999))


def _random_word(rng: random.Random, words: Sequence[str]) -> str:
    if rng.random() < 0.45:
        return rng.choice(COMMON_WORDS)
    return rng.choice(words)


def _decorated_word(rng: random.Random, words: Sequence[str], case: str, first: bool, last: bool) -> str:
    """A word (sometimes hyphenated) in the line's ``case``, sometimes enclosed in quotes or
    brackets, sometimes followed by punctuation (never the line's last token)."""
    token = _random_word(rng, words)
    if rng.random() < 0.03:
        token = f"{token}-{_random_word(rng, words)}"
    if case == "upper":
        token = token.upper()
    elif case == "title" or (case == "sentence" and first):
        token = token[:1].upper() + token[1:]
    if rng.random() < 0.04:
        left, right = rng.choice(ENCLOSING)
        token = f"{left}{token}{right}"
    if not last and rng.random() < 0.08:
        token += rng.choice(PUNCTUATION_AFTER)
    return token


def random_line(rng: random.Random, words: Sequence[str], n_tokens: int) -> str:
    """One line of ``n_tokens`` tokens: mostly words in one case (sentence, lower, title or
    upper), some numbers, symbols between words, and sometimes a closing full stop."""
    case = rng.choices(("sentence", "lower", "title", "upper"), weights=(45, 25, 18, 12))[0]
    tokens: list[str] = []
    for position in range(n_tokens):
        roll = rng.random()
        if roll < 0.10:
            tokens.append(_random_number(rng))
        elif roll < 0.13 and 0 < position < n_tokens - 1:
            tokens.append(rng.choice(SYMBOL_TOKENS))
        else:
            tokens.append(_decorated_word(rng, words, case, first=position == 0, last=position == n_tokens - 1))
    line = " ".join(tokens)
    if case == "sentence" and rng.random() < 0.4:
        line += rng.choice((".", ".", "!", "?"))
    return line


def random_transcript(rng: random.Random, words: Sequence[str], max_lines: int = MAX_LINES) -> list[str]:
    """1..max_lines lines of 1-4 tokens each (fewer lines are more likely)."""
    weights = (30, 25, 18, 12, 8, 7)[:max(1, max_lines)]
    n_lines = rng.choices(range(1, len(weights) + 1), weights=weights)[0]
    return [random_line(rng, words, rng.choices((1, 2, 3, 4), weights=(30, 35, 25, 10))[0]) for _ in range(n_lines)]


# ------------------------------------------------------------------------------------------------
# Styled lines: one character set, a share of random strings
# ------------------------------------------------------------------------------------------------


def _styled_token(rng: random.Random, style: SynthStyle, words: Sequence[str], case: str) -> str:
    alphabet = CHARSETS[style.charset]
    if rng.random() < style.random_fraction:
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(*style.string_length)))
    if style.charset == "alnum" and rng.random() < 0.1:
        return str(rng.randint(0, 9999))
    return _cased(_random_word(rng, words).lower(), case)


def _cased(word: str, case: str) -> str:
    """``word`` in ``case``: upper, title, or as it is (lower)."""
    if case == "upper":
        return word.upper()
    return word[:1].upper() + word[1:] if case == "title" else word


def _sign_number(rng: random.Random) -> str:
    """A number as signs write it: a count, a year, a price, a percentage, a time, an opening
    time, a phone number, a rank."""
    kind = rng.random()
    if kind < 0.25:
        return str(rng.randint(0, 999))
    if kind < 0.35:
        return str(rng.randint(1900, 2040))
    if kind < 0.50:
        return rng.choice(("$", "$", "")) + f"{rng.randint(0, 999)}.{rng.randint(0, 99):02d}"
    if kind < 0.60:
        return f"{rng.randint(1, 100)}%"
    if kind < 0.72:
        return f"{rng.randint(0, 23)}:{rng.randint(0, 59):02d}"
    if kind < 0.80:
        return f"{rng.randint(1, 24)}{rng.choice(('h', 'am', 'pm', 'km', 'kg', 'x', 'th'))}"
    if kind < 0.90:
        return f"{rng.randint(100, 999)}-{rng.randint(0, 9999):04d}"
    return f"#{rng.randint(1, 99)}"


def ascii_token(rng: random.Random, style: SynthStyle, words: Sequence[str], case: str) -> str:
    """One token of the ``ascii`` charset: a random string (``random_fraction`` of them; one
    character in eight punctuation), a number, a symbol, or a word in ``case`` (sometimes in
    another casing), sometimes quoted or bracketed, sometimes followed by punctuation."""
    roll = rng.random()
    if roll < style.random_fraction:
        length = rng.randint(*style.string_length)
        alphabet = string.ascii_letters + string.digits
        return "".join(rng.choice(SIGN_PUNCTUATION) if rng.random() < 0.125 else rng.choice(alphabet) for _ in range(length))
    roll = rng.random()
    if roll < 0.15:
        return _sign_number(rng)
    if roll < 0.20:
        return rng.choice(("&", "-", "+", "/", "@", "=", "*", "+/-", "&&", "--"))
    if rng.random() < 0.15:
        case = rng.choice(("lower", "title", "upper"))
    token = _cased(_random_word(rng, words).lower(), case)
    decoration = rng.random()
    if decoration < 0.08:
        left, right = rng.choice((('"', '"'), ("(", ")"), ("'", "'")))
        token = f"{left}{token}{right}"
    elif decoration < 0.24:
        token += rng.choice((",", ".", "!", "?", ":", ";", "'s", "!!", "...", "?!"))
    elif decoration < 0.28:
        token = rng.choice(("#", "@", "$", "(")) + token
    return token


def styled_line(rng: random.Random, style: SynthStyle, words: Sequence[str], fits: Callable[[str], bool]) -> str | None:
    """One line of ``style.tokens`` tokens that ``fits(line)`` and has at most
    ``style.line_chars`` characters; re-drawn up to 20 times, else None (the line is dropped:
    never hard-wrapped)."""
    if style.charset == "lower":
        case = "lower"
    elif style.charset == "ascii":
        case = rng.choices(("lower", "title", "upper", "sentence"), weights=(30, 30, 25, 15))[0]
    else:
        case = rng.choices(("lower", "title", "upper"), weights=(50, 30, 20))[0]
    low, high = style.tokens or (1, 2)
    for _ in range(20):
        count = rng.randint(low, high)
        if style.charset == "ascii":
            # sentence case: the first token capitalised, the others lower
            cases = [case] * count if case != "sentence" else ["title"] + ["lower"] * (count - 1)
            tokens = [ascii_token(rng, style, words, token_case) for token_case in cases]
        else:
            tokens = [_styled_token(rng, style, words, case) for _ in range(count)]
        line = " ".join(tokens)
        if (style.line_chars is None or len(line) <= style.line_chars) and fits(line):
            return line
    return None
