"""The sampling pipeline of docs/design.md §3: draw candidates, OCR-prune, super-resolve, pick the best.

    from glyphfuse.sampling.pipeline import load_models, sample_pipeline
    models = load_models("runs/base64/checkpoint", sr_checkpoint="runs/sr128/checkpoint")
    result = sample_pipeline("hello\\nworld", **models, candidates=4, steps=50, seed=0)
    result.image.save("hello.png"); print(result.ocr_text, result.similarity)

How it samples is one :class:`~glyphfuse.sampling.settings.SamplingSettings` (``settings=``, or its fields as
keyword arguments, as above). One output ("job") = N = ``candidates`` base candidates for one prompt:

1. all candidates of all jobs are drawn in ONE batched :func:`glyphfuse.sampling.generation.generate` call;
   candidate ``i`` of job ``j`` uses seed ``seed + j * N + i`` (so with N = 1, output j uses
   ``seed + j``, exactly as plain sampling does);
2. every candidate is read with OCR (one batched :func:`glyphfuse.ocr.reader.read_images` call for all
   jobs) and scored with the trigram similarity; :func:`glyphfuse.ocr.ranking.prune_candidates` drops
   the weak ones (never all);
3. with an SR model, the survivors are upsampled (candidate ``g`` of the whole batch uses SR seed
   ``seed + g``, so its SR image does not depend on which other candidates survived) and the SR
   outputs are read again (one OCR call);
4. each job returns the final-stage image with the highest similarity (ties: the lowest index).

A glyph-guided base model (a painter, preset ``paint128``) first needs the glyphs of each prompt
(:mod:`glyphfuse.sampling.glyphs`): with the source ``model`` a grey text model (``glyph_model``, by
default the packaged one) runs this same pipeline first, without SR, and its chosen image's ink is
what every candidate of the job paints around; with ``typeset`` the font renderer draws the ink.

With one candidate and no SR model OCR is skipped unless ``ocr=True``, so plain sampling does not
need tesseract. The SR/base compatibility is checked before anything is sampled.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch

from glyphfuse.ocr import reader, tesseract
from glyphfuse.sampling import generation
from glyphfuse.sampling import sr
from glyphfuse.core.checkpoint import load_checkpoint_config
from glyphfuse.core.config import ModelConfig
from glyphfuse.core.controls import SceneControls
from glyphfuse.core.errors import GlyphfuseError
from glyphfuse.core.files import check_writable, write_bytes_atomic, write_text_atomic
from glyphfuse.core.images import tensor_to_pil
from glyphfuse.data.imagefolder import encode_png
from glyphfuse.ocr.ranking import pick_best, prune_candidates, score_candidates
from glyphfuse.sampling.glyphs import GLYPH_SOURCES, glyphs_from_grey, typeset_glyphs
from glyphfuse.sampling.settings import SamplingSettings, resolve_settings

BASE, SR, GREY = "base", "sr", "grey"  # candidate stages; "grey": a painter's glyphs, written by a grey model
KEEP_ALL_LISTING = "candidates.json"


@dataclass
class Candidate:
    """One image the pipeline drew: a base candidate or the SR upsampling of one."""

    job: int  # which output it is a candidate for
    index: int  # candidate number within its job (0..N-1); an SR image keeps its base candidate's
    stage: str  # "base", "sr" or "grey"
    seed: int
    image: object  # PIL.Image
    ocr_text: str | None = None  # None when OCR was skipped
    score: float | None = None  # trigram similarity to the prompt; None when OCR was skipped
    kept: bool = True  # base stage: survived pruning
    chosen: bool = False  # the image the job returned
    tensor: torch.Tensor | None = field(default=None, repr=False)  # the image, (C, H, W) in [-1, 1]

    def listing(self) -> dict:
        """JSON-able description (no pixels)."""
        return {"job": self.job, "candidate": self.index, "stage": self.stage, "seed": self.seed,
                "ocr": self.ocr_text, "similarity": self.score, "kept": self.kept, "chosen": self.chosen}


@dataclass
class PipelineResult:
    """What one job returns: the chosen image and every candidate seen on the way."""

    prompt: str
    image: object  # PIL.Image of the chosen candidate (SR size with an SR model)
    tensor: torch.Tensor  # the same, (C, H, W) in [-1, 1]
    ocr_text: str | None
    similarity: float | None
    chosen_index: int  # candidate number of the chosen image
    stage: str
    candidates: list[Candidate] = field(default_factory=list)


def select_best(scores: Sequence[float | None]) -> int:
    """Index of the final pick: highest score, ties -> lowest index; all None (no OCR) -> 0."""
    if not scores:
        raise ValueError("select_best needs at least one candidate")
    if all(score is None for score in scores):
        return 0
    return pick_best([-1.0 if score is None else score for score in scores])


def load_models(checkpoint: str | Path | None = None, sr_checkpoint: str | Path | None = None, device: str = "auto", *,
                use_sr: bool = True, glyph_source: str = "model", glyph_checkpoint: str | Path | None = None, colour: bool = False) -> dict:
    """Load the base (and SR) checkpoint; the SR/base compatibility is checked from the configs
    before any weights are read. Returns keyword arguments for :func:`sample_pipeline`:
    ``base_model``, ``base_config``, ``sr_model``, ``sr_config`` (and, for a painter, ``glyph_source``,
    ``glyph_model``, ``glyph_config``).

    Without ``checkpoint`` the packaged default model is loaded, and with it its packaged SR model
    when there is one (the cascade) unless ``use_sr`` is False or ``sr_checkpoint`` names another.
    A glyph-guided ``checkpoint`` (a painter) gets its glyphs from ``glyph_source``: ``model`` loads
    the grey model ``glyph_checkpoint`` (default: the packaged model), ``typeset`` needs none.
    ``colour`` without ``checkpoint``: the packaged painter (colour pictures around the packaged
    model's writing) instead of the packaged grey cascade."""
    if colour:
        checkpoint = generation.colour_checkpoint_dir(checkpoint)
    base_path = Path(checkpoint) if checkpoint is not None else generation.default_checkpoint_dir()
    base_config = load_checkpoint_config(base_path)
    if base_config.glyphs:
        if sr_checkpoint is not None:
            raise GlyphfuseError(f"{base_path}: a painter (glyph-guided model) has no super-resolution stage yet; drop --sr-checkpoint")
        models = load_glyph_writer(base_config, glyph_source, glyph_checkpoint, device)
        base_model, base_config = generation.load_model(base_path, device)
        return {"base_model": base_model, "base_config": base_config, "sr_model": None, "sr_config": None, **models}
    if glyph_checkpoint is not None:
        raise GlyphfuseError(f"{base_path}: --glyph-checkpoint is for painters (glyph-guided models); {base_config.name!r} is not one")
    if checkpoint is None and sr_checkpoint is None and use_sr:
        sr_checkpoint = generation.packaged_sr_dir()
    if not use_sr and sr_checkpoint is not None:
        raise GlyphfuseError("--no-sr and --sr-checkpoint contradict each other; give one")
    sr_config = load_checkpoint_config(sr_checkpoint) if sr_checkpoint is not None else None
    sr.check_sr_compatible(base_config, sr_config, sr_where=str(sr_checkpoint),
                           base_where=str(checkpoint) if checkpoint is not None else "default model")
    base_model, base_config = generation.load_model(base_path, device)
    sr_model = None
    if sr_checkpoint is not None:
        sr_model, sr_config = generation.load_model(sr_checkpoint, device)
    return {"base_model": base_model, "base_config": base_config, "sr_model": sr_model, "sr_config": sr_config}


def load_glyph_writer(painter_config: ModelConfig, source: str = "model", glyph_checkpoint: str | Path | None = None,
                      device: str = "auto") -> dict:
    """Where a painter's glyphs come from, as keyword arguments of :func:`sample_many` and
    ``edit_picture``: ``glyph_source``, and for ``model`` the grey model ``glyph_checkpoint``
    (default: the packaged one), checked against the painter, and its config."""
    check_glyph_source(source)
    writer = {"glyph_source": source, "glyph_model": None, "glyph_config": None}
    if source == "model":
        grey_path = Path(glyph_checkpoint) if glyph_checkpoint is not None else generation.default_checkpoint_dir()
        check_glyph_model(load_checkpoint_config(grey_path), painter_config, str(grey_path))
        writer["glyph_model"], writer["glyph_config"] = generation.load_model(grey_path, device)
    return writer


@functools.lru_cache(maxsize=2)
def packaged_glyph_model(device=None) -> tuple[torch.nn.Module, ModelConfig]:
    """The packaged grey model, loaded once per device: the default writer of a painter's glyphs."""
    return generation.load_model(None, device if device is not None else "cpu")


def check_glyph_source(source: str) -> None:
    """GlyphfuseError naming the choices unless ``source`` is a glyph source."""
    if source not in GLYPH_SOURCES:
        raise GlyphfuseError(f"unknown glyph source {source!r}; choose one of: {', '.join(GLYPH_SOURCES)}")


def check_glyph_model(grey_config: ModelConfig, painter_config: ModelConfig, where: str = "glyph model") -> None:
    """GlyphfuseError unless ``grey_config`` is a grey base model of the painter's size."""
    if grey_config.channels != 1 or grey_config.is_super_resolution or grey_config.inpaint or grey_config.glyphs:
        raise GlyphfuseError(f"{where}: {grey_config.name!r} cannot write a painter's glyphs; it must be a grey base model such as lines128")
    if grey_config.image_size != painter_config.image_size:
        raise GlyphfuseError(f"{where}: {grey_config.name!r} draws {grey_config.image_size} px, the painter {painter_config.name!r} paints "
                             f"{painter_config.image_size} px; they must match")


# ---------------------------------------------------------------------------------------------
# sample_many: the four steps of the module docstring
# ---------------------------------------------------------------------------------------------


def sample_many(
    prompts: Sequence[str],
    settings: SamplingSettings | None = None,
    *,
    base_model: torch.nn.Module,
    base_config: ModelConfig,
    sr_model: torch.nn.Module | None = None,
    sr_config: ModelConfig | None = None,
    device: str | torch.device | None = None,
    ocr: bool | None = None,
    ocr_processes: int | None = None,
    show_progress: bool = False,
    keep_all_dir: str | Path | None = None,
    controls: Sequence[SceneControls | None] | None = None,
    glyph_source: str = "model",
    glyph_model: torch.nn.Module | None = None,
    glyph_config: ModelConfig | None = None,
    **overrides,
) -> list[PipelineResult]:
    """Run the pipeline once per prompt (job j = prompts[j]); see the module docstring.

    settings: the :class:`~glyphfuse.sampling.settings.SamplingSettings`; keyword arguments named like its
    fields override it (``candidates=4, steps=20``).
    ocr: None = read only when needed (candidates > 1 or an SR model); True = always read (the
    chosen image's OCR text and score are then known); False = never (candidates > 1 is then an error).
    keep_all_dir: also save every candidate there (see :func:`save_candidates`).
    controls: a colour model's scene controls, one per prompt (default: the settings' style and
    colours for every prompt); a kind not given is drawn per candidate (generation.resolve_controls).
    glyph_source, glyph_model, glyph_config: where a painter's glyphs come from (see the module
    docstring); other models ignore them.
    """
    settings = resolve_settings(settings, **overrides)
    prompts = list(prompts)
    read = _check_before_sampling(prompts, settings, base_config, sr_model, sr_config, ocr, keep_all_dir)

    # 0. a painter's glyphs: one per job, from a grey model (its own pipeline) or typeset.
    flat_glyphs, grey = None, []
    if base_config.glyphs:
        job_glyphs, grey = glyphs_for_prompts(prompts, settings, base_config, glyph_source, glyph_model, glyph_config, device,
                                              ocr_processes, show_progress)
        flat_glyphs = job_glyphs.repeat_interleave(settings.candidates, dim=0)

    # 1. all base candidates of all jobs in one batched call: flat index g = j * N + i.
    flat_prompts = [prompt for prompt in prompts for _ in range(settings.candidates)]
    flat_controls = None
    if controls is not None:
        if len(controls) != len(prompts):
            raise GlyphfuseError(f"got {len(controls)} scene controls for {len(prompts)} prompts")
        flat_controls = [item for item in controls for _ in range(settings.candidates)]
    base_images = generation.generate(base_model, base_config, flat_prompts, settings, device=device, show_progress=show_progress,
                                      controls=flat_controls, glyphs=flat_glyphs)
    base = [_candidate(g, image, BASE, settings) for g, image in enumerate(base_images)]  # image: (C, h, w)

    # 2. read and prune.
    survivors = list(range(len(base)))
    if read:
        _read_and_score(base, prompts, ocr_processes, show_progress)
        survivors = _prune(base, settings)

    # 3. super-resolve the survivors and read them again.
    finals = [base[g] for g in survivors]
    if sr_model is not None:
        finals = _super_resolve(survivors, flat_prompts, base_images, sr_model, sr_config, settings, device, show_progress)
        if read:
            _read_and_score(finals, prompts, ocr_processes, show_progress)

    # 4. pick the best final-stage image of each job.
    results = _pick_best(prompts, grey + base + (finals if sr_model is not None else []), finals)
    if keep_all_dir is not None:
        save_candidates(results, keep_all_dir)
    return results


def sample_pipeline(prompt: str, settings: SamplingSettings | None = None, **kwargs) -> PipelineResult:
    """The pipeline for one prompt and one output; keyword arguments as :func:`sample_many`
    (which draws several outputs, or several prompts, in one batch)."""
    return sample_many([prompt], settings, **kwargs)[0]


def glyphs_for_prompts(prompts: list[str], settings: SamplingSettings, painter_config: ModelConfig, source: str, glyph_model=None,
                       glyph_config: ModelConfig | None = None, device=None, ocr_processes: int | None = None,
                       show_progress: bool = False, sr_model=None, sr_config: ModelConfig | None = None,
                       ocr: bool | None = None, typeset_scale: int = 1) -> tuple[torch.Tensor, list[Candidate]]:
    """(glyphs (J, 1, H, W) of the J jobs, the grey candidates seen on the way): typeset, or the ink
    of the image that the grey model's own pipeline (same settings, no SR) chose for each job.

    With ``sr_model`` and ``sr_config`` (a grey SR model for the grey model) the glyphs are at the SR
    size instead: the grey pipeline runs its SR stage too (glyphfuse edit's sharp ink layer);
    typeset glyphs are drawn at ``typeset_scale`` times the painter's size. ``ocr``: as for
    :func:`sample_many`."""
    check_glyph_source(source)
    if source == "typeset":
        return typeset_glyphs(prompts, painter_config.image_size * typeset_scale), []
    if glyph_model is None or glyph_config is None:
        glyph_model, glyph_config = packaged_glyph_model(device)
    check_glyph_model(glyph_config, painter_config)
    grey_settings = dataclasses.replace(settings, style=None, text_color=None, background_color=None)  # the scene is the painter's
    written = sample_many(prompts, grey_settings, base_model=glyph_model, base_config=glyph_config, sr_model=sr_model, sr_config=sr_config,
                          device=device, ocr=ocr, ocr_processes=ocr_processes, show_progress=show_progress)  # reads when choosing
    seen = []
    for result in written:
        for candidate in result.candidates:
            seen.append(dataclasses.replace(candidate, stage=GREY))
    return glyphs_from_grey(torch.stack([result.tensor for result in written])), seen


def _check_before_sampling(prompts: list[str], settings: SamplingSettings, base_config: ModelConfig, sr_model, sr_config,
                           ocr_wanted: bool | None, keep_all_dir) -> bool:
    """Every check that can fail before the (slow) sampling; returns whether candidates are read."""
    if not prompts:
        raise GlyphfuseError("sample: no prompts given")
    if (sr_model is None) != (sr_config is None):
        raise GlyphfuseError("give both sr_model and sr_config, or neither")
    sr.check_sr_compatible(base_config, sr_config)
    read = ocr_wanted if ocr_wanted is not None else (settings.candidates > 1 or sr_model is not None)
    if not read and settings.candidates > 1:
        raise GlyphfuseError("choosing among several candidates needs OCR; do not turn it off with --candidates > 1")
    if read:
        tesseract.check_tesseract()
    if keep_all_dir is not None:
        check_writable(Path(keep_all_dir) / KEEP_ALL_LISTING)
    return read


def _candidate(flat_index: int, image: torch.Tensor, stage: str, settings: SamplingSettings) -> Candidate:
    """Candidate ``flat_index`` = j * N + i (job j, candidate i); it was drawn with seed + flat_index."""
    job, index = divmod(flat_index, settings.candidates)
    return Candidate(job=job, index=index, stage=stage, seed=settings.seed + flat_index, image=tensor_to_pil(image), tensor=image)


def _read_and_score(candidates: list[Candidate], prompts: list[str], processes: int | None, show_progress: bool) -> None:
    """OCR every candidate in one batched call; its text and trigram similarity to its prompt."""
    texts = reader.read_images([candidate.image for candidate in candidates], processes=processes, show_progress=show_progress)
    for candidate, text in zip(candidates, texts):
        candidate.ocr_text = text
        candidate.score = score_candidates([text], prompts[candidate.job])[0]


def _prune(base: list[Candidate], settings: SamplingSettings) -> list[int]:
    """Mark each job's weak candidates as not kept; the flat indices of the kept ones, sorted."""
    survivors = []
    for start in range(0, len(base), settings.candidates):
        group = base[start:start + settings.candidates]
        kept = set(prune_candidates([c.score for c in group], settings.keep_only_if_above, settings.delete_under))
        for i, candidate in enumerate(group):
            candidate.kept = i in kept
        survivors += [start + i for i in sorted(kept)]
    return survivors


def _super_resolve(survivors: list[int], flat_prompts: list[str], base_images: torch.Tensor, sr_model, sr_config: ModelConfig,
                   settings: SamplingSettings, device, show_progress: bool) -> list[Candidate]:
    """SR candidates of the surviving base candidates (sorted flat indices). Each contiguous run
    of indices is one batched call seeded ``seed + run[0]``, so candidate g gets SR seed seed + g."""
    upsampled = []
    for run in _contiguous_runs(survivors):
        run_settings = dataclasses.replace(settings, seed=settings.seed + run[0])
        images = sr.upsample_with_sr(sr_model, sr_config, [flat_prompts[g] for g in run], base_images[run[0]:run[-1] + 1],
                                     run_settings, device=device, show_progress=show_progress)  # (len(run), C, H, W)
        upsampled += [_candidate(g, image, SR, settings) for g, image in zip(run, images)]
    return upsampled


def _contiguous_runs(indices: Sequence[int]) -> list[list[int]]:
    """[0, 1, 2, 5, 6, 9] -> [[0, 1, 2], [5, 6], [9]] (sorted input)."""
    runs: list[list[int]] = []
    for index in indices:
        if runs and index == runs[-1][-1] + 1:
            runs[-1].append(index)
        else:
            runs.append([index])
    return runs


def _pick_best(prompts: list[str], seen: list[Candidate], finals: list[Candidate]) -> list[PipelineResult]:
    """One result per job: its final-stage candidate with the best score (ties: the lowest
    index), and every candidate of the job in ``seen`` order."""
    finals_of = {job: [] for job in range(len(prompts))}
    seen_of = {job: [] for job in range(len(prompts))}
    for candidate in finals:
        finals_of[candidate.job].append(candidate)
    for candidate in seen:
        seen_of[candidate.job].append(candidate)
    results = []
    for job, prompt in enumerate(prompts):
        best = finals_of[job][select_best([c.score for c in finals_of[job]])]
        best.chosen = True
        results.append(PipelineResult(prompt=prompt, image=best.image, tensor=best.tensor, ocr_text=best.ocr_text,
                                      similarity=best.score, chosen_index=best.index, stage=best.stage, candidates=seen_of[job]))
    return results


# ---------------------------------------------------------------------------------------------
# --keep-all
# ---------------------------------------------------------------------------------------------


def candidate_file_name(candidate: Candidate, jobs: int) -> str:
    """e.g. ``cand02_base_0.812.png`` (``out1_cand02_sr_0.900.png`` with several outputs);
    ``none`` for the score when OCR was skipped."""
    score = "none" if candidate.score is None else f"{candidate.score:.3f}"
    prefix = f"out{candidate.job}_" if jobs > 1 else ""
    return f"{prefix}cand{candidate.index:02d}_{candidate.stage}_{score}.png"


def save_candidates(results: Sequence[PipelineResult], out_dir: str | Path) -> Path:
    """Save every candidate of ``results`` as a PNG (name: output, candidate index, stage, score)
    into ``out_dir`` plus ``candidates.json`` listing them; returns the listing's path."""
    out_dir = Path(out_dir)  # the writes create it; they fail with one line naming the file
    rows = []
    for result in results:
        for candidate in result.candidates:
            name = candidate_file_name(candidate, len(results))
            write_bytes_atomic(out_dir / name, encode_png(candidate.image))
            rows.append({"file": name, "prompt": result.prompt, **candidate.listing()})
    listing = out_dir / KEEP_ALL_LISTING
    write_text_atomic(listing, json.dumps({"candidates": rows}, ensure_ascii=False, indent=2) + "\n")
    return listing
