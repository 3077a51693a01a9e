"""``glyphfuse synth-fonts``: make training images."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from glyphfuse.cli import options
from glyphfuse.cli.app import app, console


# --- synth-fonts ---------------------------------------------------------------------------------


@app.command("synth-fonts")
def synth_fonts(
    out_dir: Path = typer.Argument(..., help="Folder to write NAME.png + NAME.txt + metadata.jsonl into (must be empty or new)."),
    count: int = typer.Option(1000, "--count", "-n", help="Number of images."),
    recipe: Optional[str] = typer.Option(None, "--recipe", help="Named data recipe: lines128 (the grey cascade's base data), scenes128 (the same text in colour scenes), lines64, words32, full. The options below override its settings."),
    size: Optional[int] = typer.Option(None, "--size", help="Image width and height in px (default: the recipe's, else 128)."),
    seed: int = typer.Option(0, "--seed", help="Random seed; the same seed gives byte-identical files for any --workers."),
    workers: int = typer.Option(1, "--workers", "-j", help="Worker processes."),
    color: bool = typer.Option(False, "--color", help="RGB images: random colours (or tinted light backgrounds with --background light)."),
    text_file: Optional[Path] = typer.Option(None, "--text-file", help="Draw transcripts from this UTF-8 file (one per line; a literal \\n is a line break) instead of random words."),
    fonts: Optional[Path] = typer.Option(None, "--fonts", help="Folder of .ttf/.otf fonts (default: the repository's fonts/)."),
    font: Optional[List[str]] = typer.Option(None, "--font", help="Use only this font file of the fonts folder (repeat for several)."),
    font_size: Optional[str] = typer.Option(None, "--font-size", help="Font size in px, MIN-MAX or one value (e.g. 12-14); default scales with --size (8-36 px at 128 px)."),
    align: Optional[str] = typer.Option(None, "--align", help="left | center | right | random (default random)."),
    placement: Optional[str] = typer.Option(None, "--placement", help="fixed (line k always at the same height) | center | random (default random)."),
    background: Optional[str] = typer.Option(None, "--background", help="light (light flat, dark text) | random (any lightness, either polarity; default)."),
    charset: Optional[str] = typer.Option(None, "--charset", help="lower | letters | alnum | ascii (words in three casings, digits, punctuation, symbols) | printable (default: the full variety of words with capitals, digits, punctuation)."),
    random_fraction: Optional[float] = typer.Option(None, "--random-fraction", help="Share of tokens that are uniformly random strings of --charset (default 0)."),
    lines: Optional[str] = typer.Option(None, "--lines", help="Lines per image, MIN-MAX (e.g. 1-2)."),
    tokens: Optional[str] = typer.Option(None, "--tokens", help="Tokens per line, MIN-MAX (e.g. 1-2)."),
    string_length: Optional[str] = typer.Option(None, "--string-length", help="Length of the random strings, MIN-MAX (default 2-8)."),
    line_chars: Optional[int] = typer.Option(None, "--line-chars", help="Most characters a line (default: whatever fits the canvas)."),
    kinds: Optional[str] = typer.Option(None, "--kinds", help="Colour scenes of these kinds, comma-separated: plain, gradient, sign, caption, paper, screen (scenes128: all six)."),
    backgrounds: Optional[Path] = typer.Option(None, "--backgrounds", help="Folder of your own photos and textures for the scene kinds (default: the repository's backgrounds/); unusable files are skipped and named."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Allow a non-empty OUT_DIR; its old .png/.txt/metadata.jsonl are removed."),
    no_progress: bool = options.NO_PROGRESS,
) -> None:
    """Render synthetic training images: text in real fonts on flat backgrounds.

    Each image is NAME.png plus NAME.txt (its transcript, line breaks kept), listed in metadata.jsonl. Image i depends only on --seed and i, so the files are byte-identical for any --workers.

    --recipe picks a named data style (lines64 is the default model's data); the layout options override its settings. A word is never split over lines, and no word of the packaged eval prompt sets is ever drawn.

    [bold]Examples[/]

      glyphfuse synth-fonts data/lines64 --recipe lines64 --count 100000 -j 2

      glyphfuse synth-fonts data/synth128 --count 100000 --size 128 -j 2

      glyphfuse synth-fonts data/mine --size 64 --charset letters --lines 1-3

      glyphfuse synth-fonts data/own --text-file my_lines.txt --color

      glyphfuse synth-fonts data/scenes --recipe scenes128 --count 100000 -j 2

      glyphfuse synth-fonts data/mine --recipe scenes128 --kinds sign,caption --backgrounds ~/Pictures
    """
    from glyphfuse.data.synth import SynthStyle, get_data_recipe, parse_range, synthesize

    style = (get_data_recipe(recipe) if recipe else SynthStyle()).replace(
        align=align, placement=placement, background=background, charset=charset, random_fraction=random_fraction,
        lines=parse_range(lines, "--lines") if lines else None,
        tokens=parse_range(tokens, "--tokens") if tokens else None,
        string_length=parse_range(string_length, "--string-length") if string_length else None,
        font_px=parse_range(font_size, "--font-size") if font_size else None,
        fonts=tuple(font) if font else None, line_chars=line_chars,
        scene_kinds=tuple(kind.strip() for kind in kinds.split(",") if kind.strip()) if kinds else None,
    )
    size = size or style.size
    summary = synthesize(out_dir, count, size=size, seed=seed, workers=workers, color=color, text_file=text_file, fonts_dir=fonts, overwrite=overwrite, progress=not no_progress, style=style,
                         backgrounds=backgrounds)
    for problem in summary.skipped_backgrounds[:10]:
        console.print(f"note: {problem}")
    if len(summary.skipped_backgrounds) > 10:
        console.print(f"note: {len(summary.skipped_backgrounds) - 10} more unusable background file(s) skipped")
    if summary.skipped_texts:
        console.print(f"note: {summary.skipped_texts} line(s) of {text_file} skipped: no font in the fonts folder has all their characters")
    console.print(f"wrote {summary.count} images ({size} px, {summary.fonts} fonts) to {summary.out_dir} in {summary.seconds:.1f} s ({summary.images_per_second:.0f} images/s)")
