"""OCR and scores: reading images back and comparing with what was asked.

* ``reader``: which engine reads a picture (``read_images``: grey to tesseract, colour to RapidOCR);
* ``tesseract``: the tesseract binding (batched, parallel, preprocessed), for grey pictures;
* ``scene_text``: RapidOCR, for colour scenes;
* ``metrics``: CER, exact match, trigram similarity, summaries;
* ``ranking``: scoring candidates against their prompt, ranking image folders (ocr-rank).

The short names below load their module on first use (``--help`` stays fast).
"""

from glyphfuse.core.exports import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    "read_images": "reader", "has_colour": "reader", "read_image": "tesseract", "check_tesseract": "tesseract", "OcrError": "tesseract",
    "cer": "metrics", "exact": "metrics", "trigram_similarity": "metrics", "summarize": "metrics",
    "rank_folder": "ranking", "score_candidates": "ranking",
})
