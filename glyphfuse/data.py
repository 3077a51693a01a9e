"""Image folders of (image, transcript) pairs: the one reader and the one writer.

On disk a dataset is a folder of ``name.png`` (or .jpg) images, each with its transcript in
``name.txt`` (UTF-8, newlines kept) and/or a row ``{"file_name": "name.png", "text": ...}`` in
``metadata.jsonl`` (the Hugging Face ``imagefolder`` convention). ``synth-fonts`` writes both
through :func:`write_example` and :class:`MetadataWriter`; training reads them back through
:func:`scan_image_folder` and :class:`ImageTextDataset`.

Broken examples never crash an epoch: a missing or empty transcript, a metadata row without
its image, or a corrupt image is reported once by file name and skipped.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from glyphfuse.core.errors import GlyphfuseError

logger = logging.getLogger("glyphfuse.data")

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
METADATA_FILE = "metadata.jsonl"


@dataclass
class Example:
    """One training pair: an image file and the exact text written in it."""

    image_path: Path
    text: str


# ------------------------------------------------------------------------------------------------
# Writing
# ------------------------------------------------------------------------------------------------


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """Write ``data`` to a temp file beside ``path``, then rename it into place."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def encode_png(image: Image.Image, compress_level: int = 1) -> bytes:
    """PNG bytes of ``image``. Level 1 is ~5x faster than PIL's default and the files of flat
    synthetic images stay small."""
    import io

    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=compress_level, optimize=False)
    return buffer.getvalue()


def write_example(out_dir: str | Path, name: str, image: Image.Image, text: str, compress_level: int = 1) -> str:
    """Write ``name.png`` and ``name.txt`` (UTF-8, newlines kept) into ``out_dir`` atomically.
    Returns the image's file name (the ``file_name`` of its metadata row)."""
    out_dir = Path(out_dir)
    file_name = f"{name}.png"
    write_bytes_atomic(out_dir / file_name, encode_png(image, compress_level))
    write_bytes_atomic(out_dir / f"{name}.txt", text.encode("utf-8"))
    return file_name


class MetadataWriter:
    """Writes ``metadata.jsonl`` rows in order; the file appears (atomically) on ``close()``.

    >>> with MetadataWriter(out_dir) as meta:
    ...     meta.write("000000.png", "hello\\nworld")
    """

    def __init__(self, out_dir: str | Path, file_name: str = METADATA_FILE):
        self.path = Path(out_dir) / file_name
        fd, self._tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{file_name}.", suffix=".tmp")
        self._handle = os.fdopen(fd, "w", encoding="utf-8", newline="\n")
        self.rows = 0

    def write(self, file_name: str, text: str) -> None:
        self._handle.write(json.dumps({"file_name": file_name, "text": text}, ensure_ascii=False) + "\n")
        self.rows += 1

    def close(self) -> None:
        """Finish the file and move it into place."""
        if self._handle.closed:
            return
        self._handle.close()
        os.replace(self._tmp, self.path)

    def abort(self) -> None:
        """Drop the partial file (used when writing failed)."""
        if not self._handle.closed:
            self._handle.close()
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


def _read_metadata(root: Path, problems: list[str]) -> dict[str, str]:
    """``metadata.jsonl`` rows as {relative posix path: text}; bad rows become problems."""
    path = root / METADATA_FILE
    rows: dict[str, str] = {}
    if not path.is_file():
        return rows
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(f"{path}: unreadable metadata file ({exc}); ignored")
        return rows
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            file_name, text = row["file_name"], row["text"]
            if not isinstance(file_name, str) or not isinstance(text, str):
                raise TypeError("file_name and text must be strings")
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            problems.append(f"{path}:{number}: bad metadata row ({exc}); skipped")
            continue
        rows[Path(file_name).as_posix()] = _normalise_transcript(text)
    return rows


def check_image(path: Path) -> str | None:
    """Fully decode ``path``; None when fine, else the reason it is unreadable."""
    try:
        with Image.open(path) as image:
            image.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        return str(exc) or type(exc).__name__
    return None


def scan_image_folder(root: str | Path, check_images: bool = False) -> tuple[list[Example], list[str]]:
    """Find the (image, transcript) pairs under ``root``.

    The transcript comes from the image's ``metadata.jsonl`` row, else from ``name.txt`` beside it.
    Images with a missing or empty transcript, metadata rows whose image is missing and (with
    ``check_images``, which decodes every image) corrupt images are skipped; each gives one line in
    ``problems`` naming the file. Returns (examples sorted by path, problems).
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
        if relative in metadata:
            text = metadata[relative]
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
        if check_images:
            reason = check_image(image_path)
            if reason is not None:
                problems.append(f"{image_path}: unreadable or corrupt image ({reason}); skipped")
                continue
        examples.append(Example(image_path, text))
    for relative in sorted(set(metadata) - seen):
        problems.append(f"{root / relative}: listed in {METADATA_FILE} but the image is missing; skipped")
    return examples, problems


try:  # torch is a hard dependency, but keep scanning/writing importable without it
    from torch.utils.data import Dataset as _TorchDataset
except ImportError:  # pragma: no cover
    _TorchDataset = object  # type: ignore[assignment,misc]


class ImageTextDataset(_TorchDataset):
    """(image tensor (C, H, W) in [-1, 1], transcript) pairs from an image folder.

    A corrupt image found while loading is reported once (logged with its file name, kept in
    ``problems``) and replaced by the next valid example, so an epoch never crashes on it.
    """

    def __init__(self, root: str | Path, image_size: int, channels: int = 1, check_images: bool = False):
        self.root = Path(root)
        self.image_size = image_size
        self.channels = channels
        self.examples, self.problems = scan_image_folder(self.root, check_images=check_images)
        for problem in self.problems:
            logger.warning(problem)
        if not self.examples:
            first = f" (first problem: {self.problems[0]})" if self.problems else ""
            raise GlyphfuseError(f"data folder {self.root} has no usable image + transcript pairs{first}")
        self._bad: set[int] = set()

    def __len__(self) -> int:
        return len(self.examples)

    def load(self, index: int):
        """Image tensor (C, H, W) and text of example ``index``; GlyphfuseError if unreadable."""
        from glyphfuse.core.images import load_image, pil_to_tensor

        example = self.examples[index]
        return pil_to_tensor(load_image(example.image_path), self.image_size, self.channels), example.text

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
                message = f"{exc}; skipped"
                self.problems.append(message)
                logger.warning(message)
        raise GlyphfuseError(f"data folder {self.root}: every image is unreadable (see the messages above)")
