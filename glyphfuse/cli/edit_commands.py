"""``glyphfuse edit``: write a text into a box of your own picture."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from glyphfuse.cli import options
from glyphfuse.cli.app import app, console
from glyphfuse.core.errors import GlyphfuseError
from glyphfuse.core.files import check_writable

NO_EDIT_MODEL = ("no edit model is installed yet; pass --checkpoint: a painter or an inpainting checkpoint (glyphfuse warm-start --inpaint "
                 "[--glyphs], then train-inpaint), or a colour base model such as ckpt/scenes128-base (training-free, --method repaint)")


@app.command("edit")
def edit(
    image: Path = typer.Argument(..., help="Your picture: JPEG, PNG, WebP, BMP, TIFF or a still GIF; any mode (grey, RGBA, palette, 16-bit, CMYK); EXIF rotation is applied."),
    text: str = typer.Argument(..., help="The text to write; a literal \\n is a line break."),
    box: Optional[str] = typer.Option(None, "--box", help="Where the text goes: X,Y,W,H in the picture's pixels (as it is shown, upright). Required: edit never guesses a place."),
    out: Path = typer.Option(..., "--out", "-o", help="Output picture; its extension picks the format (.png, .jpg, .webp, .tif, .bmp). Lossless formats keep every pixel outside the box exactly. Never the input itself."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", "-c", help="Inpainting checkpoint, or a colour base model for --method repaint. Default: the packaged edit model, if installed."),
    method: str = typer.Option("auto", "--method", help="model (an inpainting checkpoint draws into the box), repaint (training-free: any colour base model; the known pixels are pasted back after every step) or auto (model if the checkpoint can)."),
    resample: int = typer.Option(1, "--resample", min=1, max=20, help="--method repaint: rounds per step (RePaint resampling; 1 = none). Each round costs a step."),
    candidates: int = typer.Option(1, "--candidates", min=1, max=64, help="Draw this many and keep the one whose box OCR reads closest to the text (seeds SEED..SEED+N-1)."),
    steps: int = options.STEPS,
    sampler: str = options.SAMPLER,
    guidance: float = options.GUIDANCE,
    seed: int = options.SEED,
    eta: float = options.ETA,
    style: Optional[str] = typer.Option(None, "--style", help="The kind of picture the text should look like it belongs to: plain, gradient, sign, caption, paper, screen (default: the model judges from the picture)."),
    text_color: Optional[str] = options.TEXT_COLOR,
    background_color: Optional[str] = options.BACKGROUND_COLOR,
    panel: float = typer.Option(0.0, "--panel", min=0.0, max=1.0, help="How much of the painter's own backing shows behind the text: 0 (the default) none, the text goes straight onto your picture; 1 the panel, board or band it paints (see --style)."),
    glyphs: str = options.GLYPHS,
    no_anchor_ink: bool = options.NO_ANCHOR_INK,
    glyph_checkpoint: Optional[Path] = options.GLYPH_CHECKPOINT,
    device: str = options.DEVICE,
    no_progress: bool = options.NO_PROGRESS,
) -> None:
    """Write TEXT into the box of your picture; every pixel outside the box stays as it was.

    The box is mapped onto the model's own text frame: the square of the picture around it is scaled to the model's canvas, the model draws the box's part of that square (its text left-aligned, centred vertically), and the drawing is scaled back and blended into the box, feathered inside it. Pictures up to 40 Mpx; the output has the input's size and mode (grey stays grey, alpha and 16-bit are kept where the format allows).

    [bold]Examples[/]

      glyphfuse edit photo.jpg "OPEN\\n24 h" --box 120,80,300,140 -o open.png

      glyphfuse edit photo.jpg "OPEN\\n24 h" --box 120,80,300,140 -o open.png --candidates 4 --glyphs typeset

      glyphfuse edit shop.png "SALE" --box 40,40,200,60 -o sale.png --candidates 4 --text-color white --style sign --panel 1

      glyphfuse edit card.webp "hello" --box 10,10,160,40 -o out.webp -c ckpt/scenes128-base --method repaint --resample 2
    """
    from glyphfuse.core.device import resolve_device
    from glyphfuse.editing import edit_picture, load_edit_model, open_picture, parse_box, save_picture
    from glyphfuse.editing.pictures import output_format
    from glyphfuse.sampling.generation import packaged_painter_dir, parse_prompt
    from glyphfuse.sampling.pipeline import load_glyph_writer

    if box is None:
        raise GlyphfuseError("--box X,Y,W,H is needed: the place in the picture (its pixels) where the text goes, e.g. --box 40,60,300,80")
    xywh = parse_box(box)
    settings = options.sampling_settings(steps=steps, sampler=sampler, guidance=guidance, eta=eta, seed=seed, candidates=candidates,
                                         style=style, text_color=text_color, background_color=background_color, anchor_ink=not no_anchor_ink)
    if out.resolve() == image.resolve():
        raise GlyphfuseError(f"{out}: is the input picture; write the edit to another file")
    fmt = output_format(out)
    check_writable(out)
    picture = open_picture(image)
    if checkpoint is None:
        checkpoint = packaged_painter_dir()
        if checkpoint is None:
            raise GlyphfuseError(NO_EDIT_MODEL)
    model, config = load_edit_model(checkpoint, device=str(resolve_device(device)))
    if glyph_checkpoint is not None and not config.glyphs:
        raise GlyphfuseError(f"{checkpoint}: --glyph-checkpoint is for painters (glyph-guided models); {config.name!r} is not one")
    writer = load_glyph_writer(config, glyphs, glyph_checkpoint, str(resolve_device(device))) if config.glyphs else {}
    result = edit_picture(picture, parse_prompt(text), xywh, settings, model=model, config=config, method=method, resample=resample,
                          panel=panel, **writer, show_progress=not no_progress)
    save_picture(result.image, out)
    chosen = result.candidates[result.best]
    how = "inpainting model" if result.method == "model" else f"training-free repaint, {resample} round(s) a step"
    if config.glyphs:
        how = f"painter, glyphs {'typeset' if glyphs == 'typeset' else 'written by the grey model'}"
    picked = f", best of {candidates} by OCR" if candidates > 1 else ""
    print(f"wrote {out} ({picture.size[0]}x{picture.size[1]} {result.image.mode} {fmt}; box {box}; seed {chosen.seed}{picked}; {how}; "
          f"{settings.sampler} {settings.steps} steps; {result.seconds:.1f} s)")
    if chosen.ocr is not None:
        print(f"  OCR read the box as {chosen.ocr!r}, similarity {chosen.similarity:.3f}")
    if fmt in ("JPEG", "MPO"):
        console.print("[yellow]note:[/] JPEG re-encodes the whole picture, so pixels outside the box change slightly; write .png or .webp to keep them exactly", highlight=False)
    if result.note:
        console.print(f"[yellow]note:[/] {result.note}", highlight=False)
