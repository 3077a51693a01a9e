"""OCR and scores: reading images back and comparing with what was asked.

* ``tesseract``: the one OCR engine binding (batched, parallel, preprocessed);
* ``metrics``: CER, exact match, trigram similarity, summaries;
* ``ranking``: scoring candidates against their prompt, ranking image folders (ocr-rank).

The short names below load their module on first use (``--help`` stays fast).
"""

from glyphfuse.core.exports import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    "read_images": "tesseract", "read_image": "tesseract", "check_tesseract": "tesseract", "OcrError": "tesseract",
    "cer": "metrics", "exact": "metrics", "trigram_similarity": "metrics", "summarize": "metrics",
    "rank_folder": "ranking", "score_candidates": "ranking",
})
