"""The sampling pipeline of DESIGN.md §3: draw candidates, OCR-prune, super-resolve, pick the best.

    from glyphfuse.pipeline import load_models, sample_pipeline
    models = load_models("runs/base64/checkpoint", sr_checkpoint="runs/sr128/checkpoint")
    result = sample_pipeline("hello\\nworld", **models, candidates=4, steps=50, seed=0)
    result.image.save("hello.png"); print(result.ocr_text, result.similarity)

One output ("job") = N base candidates for one prompt:

1. all candidates of all jobs are drawn in ONE batched :func:`glyphfuse.sampling.generate` call;
   candidate ``i`` of job ``j`` uses seed ``seed + j * N + i`` (so with N = 1, output j uses
   ``seed + j``, exactly as plain sampling does);
2. every candidate is read with OCR (one batched :func:`glyphfuse.ocr.read_images` call for all
   jobs) and scored with the trigram similarity; :func:`glyphfuse.ranking.prune_candidates` drops
   the weak ones (never all);
3. with an SR model, the survivors are upsampled (candidate ``g`` of the whole batch uses SR seed
   ``seed + g``, so its SR image does not depend on which other candidates survived) and the SR
   outputs are read again (one OCR call);
4. each job returns the final-stage image with the highest similarity (ties: the lowest index).

With one candidate and no SR model OCR is skipped unless ``ocr=True``, so plain sampling does not
need tesseract. The SR/base compatibility is checked before anything is sampled.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch

from glyphfuse.core.files import check_writable
from glyphfuse.core.config import ModelConfig
from glyphfuse.core.errors import GlyphfuseError

BASE, SR = "base", "sr"
KEEP_ALL_LISTING = "candidates.json"


@dataclass
class Candidate:
    """One image the pipeline drew: a base candidate or the SR upsampling of one."""

    job: int  # which output it is a candidate for
    index: int  # candidate number within its job (0..N-1); an SR image keeps its base candidate's
    stage: str  # "base" or "sr"
    seed: int
    image: object  # PIL.Image
    ocr_text: str | None = None  # None when OCR was skipped
    score: float | None = None  # trigram similarity to the prompt; None when OCR was skipped
    kept: bool = True  # base stage: survived pruning
    chosen: bool = False  # the image the job returned

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
    from glyphfuse.ranking import pick_best

    if not scores:
        raise ValueError("select_best needs at least one candidate")
    if all(score is None for score in scores):
        return 0
    return pick_best([-1.0 if score is None else score for score in scores])


def load_models(checkpoint: str | Path | None = None, sr_checkpoint: str | Path | None = None, device: str = "auto") -> dict:
    """Load the base (and SR) checkpoint; the SR/base compatibility is checked from the configs
    before any weights are read. Returns keyword arguments for :func:`sample_pipeline`:
    ``base_model``, ``base_config``, ``sr_model``, ``sr_config``."""
    from glyphfuse import sampling
    from glyphfuse.core.checkpoint import load_checkpoint_config

    base_where = str(checkpoint) if checkpoint is not None else "default model"
    if sr_checkpoint is not None:
        base_path = Path(checkpoint) if checkpoint is not None else sampling.default_checkpoint_dir()
        check_compatible(load_checkpoint_config(base_path), load_checkpoint_config(sr_checkpoint), base_where=base_where, sr_where=str(sr_checkpoint))
    base_model, base_config = sampling.load_model(checkpoint, device)
    if base_config.is_super_resolution:
        raise GlyphfuseError(f"{base_where}: {base_config.name!r} is a super-resolution model; sampling needs a base model checkpoint (pass the SR one as --sr-checkpoint)")
    sr_model = sr_config = None
    if sr_checkpoint is not None:
        sr_model, sr_config = sampling.load_model(sr_checkpoint, device)
    return {"base_model": base_model, "base_config": base_config, "sr_model": sr_model, "sr_config": sr_config}


def check_compatible(base_config: ModelConfig, sr_config: ModelConfig | None, **where) -> None:
    """GlyphfuseError unless ``sr_config`` (if any) can upsample ``base_config``'s images."""
    from glyphfuse.sr import check_sr_compatible

    if base_config.is_super_resolution:
        raise GlyphfuseError(f"{where.get('base_where') or base_config.name}: is a super-resolution model; the first stage needs a base model")
    if sr_config is not None:
        check_sr_compatible(base_config, sr_config, **where)


def _contiguous_runs(indices: Sequence[int]) -> list[list[int]]:
    """[0, 1, 2, 5, 6, 9] -> [[0, 1, 2], [5, 6], [9]] (sorted input)."""
    runs: list[list[int]] = []
    for index in indices:
        if runs and index == runs[-1][-1] + 1:
            runs[-1].append(index)
        else:
            runs.append([index])
    return runs


def sample_many(
    prompts: Sequence[str],
    *,
    base_model: torch.nn.Module,
    base_config: ModelConfig,
    sr_model: torch.nn.Module | None = None,
    sr_config: ModelConfig | None = None,
    candidates: int = 1,
    keep_only_if_above: float = 0.8,
    delete_under: float = 0.3,
    steps: int = 50,
    sampler: str = "ddim",
    guidance: float = 3.0,
    seed: int = 0,
    device: str | torch.device | None = None,
    eta: float = 0.0,
    dynamic_threshold: float | None = None,
    sr_steps: int | None = None,
    sr_guidance: float = 1.0,
    sr_low_res_noise: float = 0.0,
    ocr: bool | None = None,
    ocr_processes: int | None = None,
    batch_size: int = 16,
    show_progress: bool = False,
    keep_all_dir: str | Path | None = None,
) -> list[PipelineResult]:
    """Run the pipeline once per prompt (job j = prompts[j]); see the module docstring.

    ocr: None = read only when needed (candidates > 1 or an SR model); True = always read (the
    chosen image's OCR text and score are then known); False = never (candidates > 1 is then an error).
    keep_all_dir: also save every candidate there (see :func:`save_candidates`).
    """
    from glyphfuse import sampling
    from glyphfuse.core.images import tensor_to_pil
    from glyphfuse.ranking import prune_candidates, score_candidates

    prompts = list(prompts)
    if not prompts:
        raise GlyphfuseError("sample: no prompts given")
    if candidates < 1:
        raise GlyphfuseError(f"--candidates must be at least 1, got {candidates}")
    for name, value in (("--keep-only-if-above", keep_only_if_above), ("--delete-under", delete_under)):
        if not 0.0 <= value <= 1.0:
            raise GlyphfuseError(f"{name} must be a similarity in [0, 1], got {value}")
    if (sr_model is None) != (sr_config is None):
        raise GlyphfuseError("give both sr_model and sr_config, or neither")
    check_compatible(base_config, sr_config)  # before any sampling
    read = ocr if ocr is not None else (candidates > 1 or sr_model is not None)
    if not read and candidates > 1:
        raise GlyphfuseError("choosing among several candidates needs OCR; do not turn it off with --candidates > 1")
    if read:
        from glyphfuse.ocr import check_tesseract

        check_tesseract()  # fail before the (slow) sampling, not after
    if keep_all_dir is not None:
        check_writable(Path(keep_all_dir) / KEEP_ALL_LISTING)  # likewise

    # 1. all base candidates of all jobs in one batched call: flat index g = j * N + i.
    flat_prompts = [prompt for prompt in prompts for _ in range(candidates)]
    base_images = sampling.generate(
        base_model, base_config, flat_prompts, steps=steps, sampler=sampler, guidance=guidance, seed=seed, device=device,
        eta=eta, dynamic_threshold=dynamic_threshold, show_progress=show_progress, batch_size=batch_size,
    )  # (J*N, C, h, w)
    base = [Candidate(job=g // candidates, index=g % candidates, stage=BASE, seed=seed + g, image=tensor_to_pil(image))
            for g, image in enumerate(base_images)]

    # 2. read and prune.
    survivors = list(range(len(base)))
    if read:
        from glyphfuse.ocr import read_images

        texts = read_images([c.image for c in base], processes=ocr_processes, show_progress=show_progress)
        for candidate, text in zip(base, texts):
            candidate.ocr_text = text
            candidate.score = score_candidates([text], prompts[candidate.job])[0]
        survivors = []
        for job in range(len(prompts)):
            group = base[job * candidates:(job + 1) * candidates]
            kept = set(prune_candidates([c.score for c in group], keep_only_if_above, delete_under))
            for i, candidate in enumerate(group):
                candidate.kept = i in kept
                if candidate.kept:
                    survivors.append(job * candidates + i)

    # 3. super-resolve the survivors; each contiguous run of flat indices is one batched call so that
    #    candidate g always gets SR seed seed + g.
    final_tensors: dict[int, torch.Tensor] = {g: base_images[g] for g in survivors}
    sr_candidates: list[Candidate] = []
    if sr_model is not None:
        from glyphfuse.sr import upsample_with_sr

        for run in _contiguous_runs(survivors):
            upsampled = upsample_with_sr(
                sr_model, sr_config, [flat_prompts[g] for g in run], base_images[run[0]:run[-1] + 1],
                steps=sr_steps or steps, seed=seed + run[0], guidance=sr_guidance, device=device, sampler=sampler, eta=eta,
                low_res_noise=sr_low_res_noise, dynamic_threshold=dynamic_threshold, batch_size=batch_size, show_progress=show_progress,
            )
            for g, image in zip(run, upsampled):
                final_tensors[g] = image
                sr_candidates.append(Candidate(job=g // candidates, index=g % candidates, stage=SR, seed=seed + g, image=tensor_to_pil(image)))
        from glyphfuse.ocr import read_images

        texts = read_images([c.image for c in sr_candidates], processes=ocr_processes, show_progress=show_progress)
        for candidate, text in zip(sr_candidates, texts):
            candidate.ocr_text = text
            candidate.score = score_candidates([text], prompts[candidate.job])[0]

    # 4. pick the best final-stage image of each job.
    final_by_job: dict[int, list[Candidate]] = {job: [] for job in range(len(prompts))}
    for candidate in (sr_candidates if sr_model is not None else [base[g] for g in survivors]):
        final_by_job[candidate.job].append(candidate)
    results = []
    for job, prompt in enumerate(prompts):
        finals = final_by_job[job]
        best = finals[select_best([c.score for c in finals])]
        best.chosen = True
        seen = [c for c in base if c.job == job] + [c for c in sr_candidates if c.job == job]
        results.append(PipelineResult(
            prompt=prompt, image=best.image, tensor=final_tensors[job * candidates + best.index], ocr_text=best.ocr_text,
            similarity=best.score, chosen_index=best.index, stage=best.stage, candidates=seen,
        ))
    if keep_all_dir is not None:
        save_candidates(results, keep_all_dir)
    return results


def sample_pipeline(prompt: str, **kwargs) -> PipelineResult:
    """The pipeline for one prompt and one output; keyword arguments as :func:`sample_many`
    (which draws several outputs, or several prompts, in one batch)."""
    return sample_many([prompt], **kwargs)[0]


def candidate_file_name(candidate: Candidate, jobs: int) -> str:
    """e.g. ``cand02_base_0.812.png`` (``out1_cand02_sr_0.900.png`` with several outputs);
    ``none`` for the score when OCR was skipped."""
    score = "none" if candidate.score is None else f"{candidate.score:.3f}"
    prefix = f"out{candidate.job}_" if jobs > 1 else ""
    return f"{prefix}cand{candidate.index:02d}_{candidate.stage}_{score}.png"


def save_candidates(results: Sequence[PipelineResult], out_dir: str | Path) -> Path:
    """Save every candidate of ``results`` as a PNG (name: output, candidate index, stage, score)
    into ``out_dir`` plus ``candidates.json`` listing them; returns the listing's path."""
    from glyphfuse.core.files import write_bytes_atomic
    from glyphfuse.data import encode_png

    out_dir = Path(out_dir)  # the writes create it; they fail with one line naming the file
    rows = []
    for result in results:
        for candidate in result.candidates:
            name = candidate_file_name(candidate, len(results))
            write_bytes_atomic(out_dir / name, encode_png(candidate.image))
            rows.append({"file": name, "prompt": result.prompt, **candidate.listing()})
    listing = out_dir / KEEP_ALL_LISTING
    write_bytes_atomic(listing, (json.dumps({"candidates": rows}, ensure_ascii=False, indent=2) + "\n").encode("utf-8"))
    return listing
