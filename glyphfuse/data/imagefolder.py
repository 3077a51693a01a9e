"""Image folders of (image, transcript) pairs: the one reader and the one writer.

On disk a dataset is a folder of ``name.png`` (or .jpg) images, each with its transcript in
``name.txt`` (UTF-8, newlines kept) and/or a row ``{"file_name": "name.png", "text": ...}`` in
``metadata.jsonl`` (the Hugging Face ``imagefolder`` convention); a row may also carry the image's
scene controls (``kind``, ``text_color``, ``background_color``: glyphfuse.core.controls), which a
colour model is trained on. ``synth-fonts`` writes both
through :func:`write_example` and :class:`MetadataWriter`; training reads them back through
:func:`scan_image_folder` and :class:`ImageTextDataset`.

Broken examples never crash an epoch and are never used silently: a missing, empty or (for the
model) too long transcript, a metadata row that is not valid UTF-8 JSON or has no image, and a
corrupt, too large or too small image are each reported once by file name and skipped.
"""

from __future__ import annotations

import io
import json
import logging
import os
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from PIL import Image
from torch.utils.data import Dataset

from glyphfuse.core.controls import SceneControls
from glyphfuse.core.errors import GlyphfuseError
from glyphfuse.core.files import output_error, write_bytes_atomic
from glyphfuse.core.images import load_image, pil_to_tensor
from glyphfuse.core.tokenizer import encoded_length

logger = logging.getLogger("glyphfuse.data.imagefolder")

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
METADATA_FILE = "metadata.jsonl"


@dataclass
class Example:
    """One training pair: an image file and the exact text written in it."""

    image_path: Path
    text: str
    controls: SceneControls | None = None  # from the metadata row, if it has any


# ------------------------------------------------------------------------------------------------
# Writing
# ------------------------------------------------------------------------------------------------


def encode_png(image: Image.Image, compress_level: int = 1) -> bytes:
    """PNG bytes of ``image``. Level 1 is ~5x faster than PIL's default and the files of flat
    synthetic images stay small."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=compress_level, optimize=False)
    return buffer.getvalue()


def write_example(out_dir: str | Path, name: str, image: Image.Image, text: str, compress_level: int = 1) -> str:
    """Write ``name.png`` and ``name.txt`` (UTF-8, newlines kept) into ``out_dir`` atomically.
    Returns the image's file name (the ``file_name`` of its metadata row)."""
    out_dir = Path(out_dir)
    file_name = f"{name}.png"
    # not fsynced one by one (100,000 small files); a killed run leaves complete files or none
    write_bytes_atomic(out_dir / file_name, encode_png(image, compress_level), durable=False)
    write_bytes_atomic(out_dir / f"{name}.txt", text.encode("utf-8"), durable=False)
    return file_name


class MetadataWriter:
    """Writes ``metadata.jsonl`` rows in order; the file appears (atomically) on ``close()``.

    >>> with MetadataWriter(out_dir) as meta:
    ...     meta.write("000000.png", "hello\\nworld")
    """

    def __init__(self, out_dir: str | Path, file_name: str = METADATA_FILE):
        self.path = Path(out_dir) / file_name
        try:
            fd, self._tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{file_name}.", suffix=".tmp")
        except OSError as exc:
            raise output_error(self.path, exc) from None
        self._handle = os.fdopen(fd, "w", encoding="utf-8", newline="\n")
        self.rows = 0

    def write(self, file_name: str, text: str, controls: SceneControls | None = None) -> None:
        row = {"file_name": file_name, "text": text, **(controls.to_row() if controls is not None else {})}
        try:
            self._handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        except OSError as exc:
            self.abort()
            raise output_error(self.path, exc) from None
        self.rows += 1

    def close(self) -> None:
        """Finish the file and move it into place."""
        if self._handle.closed:
            return
        try:
            self._handle.close()
            os.replace(self._tmp, self.path)
        except OSError as exc:
            self.abort()
            raise output_error(self.path, exc) from None

    def abort(self) -> None:
        """Drop the partial file (used when writing failed)."""
        if not self._handle.closed:
            try:
                self._handle.close()
            except OSError:
                pass  # e.g. disk full while flushing: the file is dropped anyway
        Path(self._tmp).unlink(missing_ok=True)

    def __enter__(self) -> "MetadataWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


# ------------------------------------------------------------------------------------------------
# Reading
# ------------------------------------------------------------------------------------------------


def _normalise_transcript(text: str) -> str:
    """Unify line endings and drop the trailing newline an editor may add; inner newlines stay."""
    return text.replace("\r\n", "\n").replace("\r", "\n").rstrip("\n")


def _read_metadata(root: Path, problems: list[str]) -> dict[str, tuple[str, SceneControls | None]]:
    """``metadata.jsonl`` rows as {relative posix path: (text, controls)}; bad rows become problems."""
    path = root / METADATA_FILE
    rows: dict[str, tuple[str, SceneControls | None]] = {}
    if not path.is_file():
        return rows
    try:
        lines = path.read_bytes().splitlines()
    except OSError as exc:
        problems.append(f"{path}: unreadable metadata file ({exc.strerror or exc}); ignored")
        return rows
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw.decode("utf-8"))
            file_name, text = row["file_name"], row["text"]
            if not isinstance(file_name, str) or not isinstance(text, str):
                raise TypeError("file_name and text must be strings")
            controls = SceneControls.from_row(row, f"{path}:{number}")
        except UnicodeDecodeError as exc:
            problems.append(f"{path}:{number}: bad metadata row (not UTF-8: {exc.reason} at byte {exc.start}); skipped")
            continue
        except GlyphfuseError as exc:
            problems.append(f"{exc}; skipped")
            continue
        except (ValueError, KeyError, TypeError, RecursionError) as exc:
            problems.append(f"{path}:{number}: bad metadata row ({type(exc).__name__}: {exc}); skipped")
            continue
        rows[Path(file_name).as_posix()] = (_normalise_transcript(text), controls)
    return rows


def check_image(path: Path, max_pixels: int | None = None) -> str | None:
    """Fully decode ``path``; None when fine, else the reason it is unusable."""
    try:
        load_image(path, max_pixels)
    except GlyphfuseError as exc:
        return str(exc).removeprefix(f"{path}: ")
    return None


def scan_image_folder(root: str | Path, check_images: bool = False, max_text_tokens: int | None = None) -> tuple[list[Example], list[str]]:
    """Find the (image, transcript) pairs under ``root``.

    The transcript comes from the image's ``metadata.jsonl`` row, else from ``name.txt`` beside it.
    Images with a missing or empty transcript, or (with ``max_text_tokens``) a transcript longer
    than that many tokens (a model would only see its start: it would no longer match the image),
    metadata rows whose image is missing and (with ``check_images``, which decodes every image)
    unusable images are skipped; each gives one line in ``problems`` naming the file. Returns
    (examples sorted by path, problems).
    """
    root = Path(root)
    if not root.is_dir():
        raise GlyphfuseError(f"data folder {root} does not exist or is not a folder")
    problems: list[str] = []
    metadata = _read_metadata(root, problems)
    image_paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file() and not p.name.startswith("."))
    seen: set[str] = set()
    examples: list[Example] = []
    for image_path in image_paths:
        relative = image_path.relative_to(root).as_posix()
        seen.add(relative)
        controls = None
        if relative in metadata:
            text, controls = metadata[relative]
        else:
            txt_path = image_path.with_suffix(".txt")
            if not txt_path.is_file():
                problems.append(f"{image_path}: no transcript ({txt_path.name} missing and no {METADATA_FILE} row); skipped")
                continue
            try:
                text = _normalise_transcript(txt_path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError) as exc:
                problems.append(f"{txt_path}: unreadable transcript ({exc}); skipped {image_path.name}")
                continue
        if not text.strip():
            problems.append(f"{image_path}: empty transcript; skipped")
            continue
        if max_text_tokens is not None and encoded_length(text) > max_text_tokens:
            problems.append(
                f"{image_path}: transcript longer than the model's max_length of {max_text_tokens} tokens "
                f"({len(text)} characters, {encoded_length(text)} tokens; a truncated one would not match the image); skipped"
            )
            continue
        if check_images:
            reason = check_image(image_path)
            if reason is not None:
                problems.append(f"{image_path}: {reason}; skipped")
                continue
        examples.append(Example(image_path, text, controls))
    for relative in sorted(set(metadata) - seen):
        problems.append(f"{root / relative}: listed in {METADATA_FILE} but the image is missing; skipped")
    return examples, problems


def problem_summary(problems: list[str]) -> str:
    """'3 x empty transcript, 1 x smaller than the model's 32 px': the reasons of ``problems``
    (lines "<file>: <reason>; skipped") counted, most frequent first."""
    reasons = Counter(problem.partition(": ")[2].split(" (")[0].removesuffix("; skipped") for problem in problems)
    return ", ".join(f"{count} x {reason}" for reason, count in reasons.most_common())


# Training images are decoded in full in every epoch; anything above 16 Mpx (4096 x 4096) is a
# mistake or a decompression bomb, not a training example (PIL's own limit is about 89 Mpx).
TRAINING_MAX_PIXELS = 4096 * 4096


class ImageTextDataset(Dataset):
    """(image tensor (C, H, W) in [-1, 1], transcript, scene controls or None) from an image folder.

    Transcripts longer than ``max_text_tokens`` are skipped when the folder is scanned. An image
    found unusable while loading (corrupt, over :data:`TRAINING_MAX_PIXELS`, or smaller than
    ``image_size`` on its short side: it would be upscaled into blurred glyphs) is reported once
    (kept in ``problems``; logged unless ``log`` is False) and replaced by the next usable
    example, so an epoch never crashes on it. The replacement depends only on the index, so the
    data order stays reproducible.
    """

    def __init__(self, root: str | Path, image_size: int, channels: int = 1, check_images: bool = False, *,
                 max_text_tokens: int | None = None, log: bool = True):
        self.root = Path(root)
        self.image_size = image_size
        self.channels = channels
        self.log = log
        self.examples, self.problems = scan_image_folder(self.root, check_images=check_images, max_text_tokens=max_text_tokens)
        self._known = set(self.problems)
        if log:
            for problem in self.problems:
                logger.warning(problem)
        if not self.examples:
            first = f" (first problem: {self.problems[0]})" if self.problems else ""
            raise GlyphfuseError(f"data folder {self.root} has no usable image + transcript pairs{first}")
        self._bad: set[int] = set()

    def __len__(self) -> int:
        return len(self.examples)

    def load(self, index: int):
        """Image tensor (C, H, W), text and controls of example ``index``; GlyphfuseError if unusable."""
        example = self.examples[index]
        image = load_image(example.image_path, TRAINING_MAX_PIXELS)
        if min(image.size) < self.image_size:
            raise GlyphfuseError(
                f"{example.image_path}: smaller than the model's {self.image_size} px ({image.width}x{image.height}; it would be upscaled)"
            )
        return pil_to_tensor(image, self.image_size, self.channels), example.text, example.controls

    def add_problems(self, problems: list[str]) -> list[str]:
        """Record problems (e.g. found by a DataLoader worker's copy of this dataset); returns
        the ones not known before."""
        new = [problem for problem in dict.fromkeys(problems) if problem not in self._known]
        self._known.update(new)
        self.problems.extend(new)
        if self.log:
            for problem in new:
                logger.warning(problem)
        return new

    def __getitem__(self, index: int):
        count = len(self.examples)
        for offset in range(count):
            candidate = (index + offset) % count
            if candidate in self._bad:
                continue
            try:
                return self.load(candidate)
            except GlyphfuseError as exc:
                self._bad.add(candidate)
                self.add_problems([f"{exc}; skipped"])
        raise GlyphfuseError(f"data folder {self.root}: no image is usable ({problem_summary(self.problems)}; first: {self.problems[0]})")
