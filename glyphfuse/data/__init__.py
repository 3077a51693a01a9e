"""Data: what the models learn from and are asked.

* ``synth``, ``transcripts``, ``render``, ``layout``: synthetic training images (synth-fonts):
  what an image says, how it is laid out and drawn;
* ``fonts``: the font folder and what each font covers;
* ``imagefolder``: image + transcript folders (reading for training, writing for synth);
* ``prompts``: how prompts are written, the packaged held-out prompt sets.

The short names below load their module on first use (``--help`` stays fast).
"""

from glyphfuse.core.exports import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    "synthesize": "synth", "SynthStyle": "transcripts", "DATA_RECIPES": "transcripts", "get_data_recipe": "transcripts",
    "ImageTextDataset": "imagefolder", "scan_image_folder": "imagefolder",
    "PROMPT_SETS": "prompts", "load_prompts": "prompts", "load_prompt_file": "prompts", "parse_prompt": "prompts",
})
