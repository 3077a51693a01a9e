"""Sampling: drawing images from trained models.

* ``generation``: load a checkpoint (or the packaged model), generate images for prompts, save;
* ``settings``: every sampling option in one checked dataclass;
* ``inputs``: what generate checks before any compute (prompts, SR, inpainting and glyph inputs);
* ``glyphs``: a painter's glyphs, typeset or read back from a grey model's sample;
* ``sr``: upsampling base images with a super-resolution model;
* ``pipeline``: the cascade: candidates -> OCR prune -> SR -> OCR pick best.

The short names below load their module on first use (``--help`` stays fast).
"""

from glyphfuse.core.exports import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    "load_model": "generation", "generate": "generation", "save_images": "generation", "DEFAULT_MODEL_DIR": "generation",
    "SamplingSettings": "settings",
    "upsample_with_sr": "sr",
    "load_models": "pipeline", "sample_pipeline": "pipeline", "sample_many": "pipeline", "PipelineResult": "pipeline",
})
