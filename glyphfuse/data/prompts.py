"""Prompts: how a prompt is written on the command line and in files, and the packaged sets.

* On the command line a literal backslash-n (two characters) is a line break:
  ``glyphfuse sample "the\\nwhat string"`` writes two lines (:func:`parse_prompt`).
* A prompt file has one prompt per line, written the same way; blank lines and lines starting
  with ``#`` are skipped (:func:`load_prompt_file`; train-base --sample-prompts, eval --prompts).
* The packaged held-out sets live in ``glyphfuse/resources/prompts/NAME.txt`` (mirrored in
  ``examples/prompts/``): no token of theirs is ever drawn by synth-fonts, so ``glyphfuse eval``
  measures writing, not memory (:func:`load_prompts`).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from glyphfuse.core.errors import GlyphfuseError

PROMPT_SETS = ("words", "lines2", "strings", "short", "phrases", "multiline", "original", "cased", "signs", "alnum", "readme")
DEFAULT_PROMPT_SET = "words"

# The prompts of the trainer's sample grids (examples/sample_prompts.txt holds the same lines):
# words, capitals, digits and line breaks, short enough for the tiny preset's text encoder.
DEFAULT_SAMPLE_PROMPTS: tuple[str, ...] = (
    "hello",
    "the\nwhat string",
    "GLYPH",
    "fuse 42",
    "Open\nDaily",
    "sale 50%",
    "abc xyz",
    "NO\nEXIT",
)


def parse_prompt(cli_text: str) -> str:
    """Command-line prompt -> text: the two characters backslash + n become a line break."""
    return cli_text.replace("\\n", "\n")


def read_prompt_lines(path: str | Path, *, comments: bool = True, what: str = "prompt file") -> list[str]:
    """The prompts of a UTF-8 text file, one a line (a literal ``\\n`` is a line break). Blank lines
    are skipped, and with ``comments`` lines starting with '#'. GlyphfuseError naming the file
    when it is missing, not UTF-8 text or holds no prompt."""
    path = Path(path)
    if not path.is_file():
        raise GlyphfuseError(f"{path}: no such {what}")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise GlyphfuseError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise GlyphfuseError(f"{path}: cannot read ({exc.strerror or exc})") from None
    kept = [line.strip() for line in lines if line.strip() and not (comments and line.lstrip().startswith("#"))]
    if not kept:
        raise GlyphfuseError(f"{path}: no prompts in the {what}")
    return [parse_prompt(line) for line in kept]


def load_prompt_file(path: str | Path) -> list[str]:
    """Prompts from a prompt file ('#' comments and blank lines skipped)."""
    return read_prompt_lines(path)


def prompt_set_text(name: str) -> str:
    """The text of a packaged prompt set (one of PROMPT_SETS)."""
    if name not in PROMPT_SETS:
        raise GlyphfuseError(f"unknown prompt set {name!r}; choose one of {', '.join(PROMPT_SETS)} or give a prompt file")
    return resources.files("glyphfuse").joinpath(f"resources/prompts/{name}.txt").read_text(encoding="utf-8")


def load_prompts(source: str | Path | None = None) -> tuple[list[str], str]:
    """(prompts, where they came from) from a prompt file or a packaged set name (default
    ``words``). A set name wins unless a file of that name exists in the working folder."""
    if source is None:
        source = DEFAULT_PROMPT_SET
    if str(source) in PROMPT_SETS and not Path(source).exists():
        with resources.as_file(resources.files("glyphfuse").joinpath(f"resources/prompts/{source}.txt")) as path:
            return load_prompt_file(path), f"glyphfuse:{source}"
    return load_prompt_file(source), str(source)
