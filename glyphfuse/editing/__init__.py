"""Editing a user's picture: ``glyphfuse edit`` and its Python API.

* :mod:`glyphfuse.editing.pictures` – opening any picture safely, writing it back in kind;
* :mod:`glyphfuse.editing.geometry` – the box, mapped onto the model's text frame and back;
* :mod:`glyphfuse.editing.compose` – a drawing into the box's pixels: seamless background, sharp ink;
* :mod:`glyphfuse.editing.edit` – the edit: crop, inpaint, compose, OCR-pick.
"""

from glyphfuse.editing.edit import EditCandidate, EditResult, edit_picture, load_edit_model
from glyphfuse.editing.geometry import parse_box
from glyphfuse.editing.pictures import MAX_PIXELS, Picture, open_picture, save_picture

__all__ = ["EditCandidate", "EditResult", "MAX_PIXELS", "Picture", "edit_picture", "load_edit_model", "open_picture", "parse_box",
           "save_picture"]
