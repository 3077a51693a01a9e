"""A user's picture in and out of ``glyphfuse edit``: opened safely, written back in kind.

:func:`open_picture` takes a path or the bytes of an upload and gives a :class:`Picture`: the
image upright (EXIF orientation applied) in its own mode, plus an RGB working copy for the model.
Every refusal is a one-line GlyphfuseError: not an image, truncated or corrupt, animated, more than
:data:`MAX_PIXELS` (checked from the header, before decoding: a decompression bomb never decodes).

:meth:`Picture.with_region` pastes an edited RGB region back into the image *in its own mode*
(greyscale stays greyscale, alpha and 16-bit depth are kept, CMYK stays CMYK), so every pixel
outside the region is the input's own value. :func:`save_picture` writes it atomically in the
format of the output's extension; lossy formats (JPEG) re-encode the whole picture, so the
exactness outside the box holds for lossless ones (PNG, WebP lossless, TIFF, BMP).
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from glyphfuse.core.errors import GlyphfuseError
from glyphfuse.core.files import check_writable, write_bytes_atomic

MAX_PIXELS = 40_000_000  # the largest picture edit decodes: 40 Mpx (e.g. 7,700 x 5,200)
LOSSY_FORMATS = ("JPEG", "MPO")  # re-encoding changes every pixel
SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I")  # 16-bit greyscale as PIL opens it (PNG, TIFF)
BLEND_ROWS = 256  # Picture.with_region blends this many rows at a time


@dataclass
class Picture:
    """A user's picture: ``image`` upright in its own mode, ``rgb`` its 8-bit RGB working copy."""

    image: Image.Image
    rgb: Image.Image
    format: str | None  # the file format it was read as (PNG, JPEG, WEBP, ...)
    name: str  # for messages: the path, or "upload"

    @property
    def size(self) -> tuple[int, int]:
        return self.image.size

    def with_region(self, region_rgb: np.ndarray, weight: np.ndarray, box: tuple[int, int, int, int]) -> Image.Image:
        """The picture with ``region_rgb`` (h, w, 3) uint8 blended in at ``box`` (left, top, right,
        bottom) by ``weight`` (h, w) in [0, 1], in the picture's own mode. Pixels outside the box,
        and inside it where weight is 0, keep their exact input values."""
        left, top, right, bottom = box
        old_rgb = np.asarray(self.rgb.crop(box))
        blended = np.empty_like(old_rgb)
        for start in range(0, bottom - top, BLEND_ROWS):  # in bands of rows: a huge box stays small in memory
            rows = slice(start, start + BLEND_ROWS)
            share = weight[rows, :, None]
            blended[rows] = np.rint(share * region_rgb[rows] + (1.0 - share) * old_rgb[rows])
        original = np.asarray(self.image.crop(box))
        if self.image.mode == "RGBA":  # the colour changes, the alpha stays the input's
            patch_array = np.concatenate([blended, original[..., 3:]], axis=2)
        else:
            patch_array = np.asarray(_to_mode(Image.fromarray(blended, "RGB"), self.image.mode)).copy()
        keep = weight <= 0  # exactly the input there, whatever the mode conversions round to
        patch_array[keep] = original[keep]
        out = self.image.copy()
        out.paste(Image.fromarray(patch_array) if out.mode in SIXTEEN_BIT_MODES else Image.fromarray(patch_array, out.mode), (left, top))
        return out


def _to_mode(patch: Image.Image, mode: str) -> Image.Image:
    """An RGB patch converted to ``mode`` (one that :func:`_normalised` leaves, RGBA aside)."""
    if mode in ("RGB", "L", "CMYK", "YCbCr", "LAB", "HSV"):
        return patch.convert(mode)
    if mode in SIXTEEN_BIT_MODES:
        array = np.asarray(patch.convert("L"), dtype=np.uint16) * 257  # 8 -> 16 bit, 255 -> 65535
        return Image.fromarray(array.astype(np.int32) if mode == "I" else array)  # numpy picks the mode: I or I;16
    raise GlyphfuseError(f"pictures in mode {mode} are converted on opening; this is a bug")


def _normalised(image: Image.Image) -> Image.Image:
    """The picture in a mode :meth:`Picture.with_region` writes: palette and 1-bit pictures become
    RGB(A) or L, alpha is kept as RGBA, float and 32-bit integer images become 8-bit L."""
    if image.mode == "P":
        return image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode == "PA":
        return image.convert("RGBA")
    if image.mode == "1":
        return image.convert("L")
    if image.mode == "LA":
        return image.convert("RGBA")
    if image.mode == "F":
        return Image.fromarray(np.clip(np.asarray(image), 0, 255).astype(np.uint8), "L")
    if image.mode in ("I;16B", "I;16L"):
        return image.convert("I;16") if image.mode != "I;16" else image
    if image.mode == "I":
        array = np.asarray(image)
        if array.min() < 0 or array.max() > 65535:
            raise GlyphfuseError(f"32-bit integer pictures with values outside 0..65535 are not supported (mode {image.mode})")
        return Image.fromarray(array.astype(np.uint16))  # mode I;16
    return image


def _rgb_of(image: Image.Image) -> Image.Image:
    if image.mode in SIXTEEN_BIT_MODES:
        return Image.fromarray((np.asarray(image, dtype=np.uint32) // 257).astype(np.uint8), "L").convert("RGB")
    return image.convert("RGB")  # RGBA: the colour of transparent pixels, as it is


def open_picture(source: str | Path | bytes, *, max_pixels: int = MAX_PIXELS, name: str | None = None) -> Picture:
    """Open a picture from a path or bytes, upright, or a one-line GlyphfuseError saying why not."""
    label = name or (str(source) if not isinstance(source, (bytes, bytearray)) else "upload")
    stream = io.BytesIO(bytes(source)) if isinstance(source, (bytes, bytearray)) else source
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(stream) as image:
                pixels = image.width * image.height
                if pixels > max_pixels:
                    raise GlyphfuseError(f"{label}: picture is {image.width}x{image.height} ({pixels / 1e6:.1f} Mpx), more than the "
                                         f"{max_pixels / 1e6:.0f} Mpx that edit decodes; scale it down first")
                if getattr(image, "n_frames", 1) > 1:
                    raise GlyphfuseError(f"{label}: an animated picture ({image.n_frames} frames); edit takes a still picture (export one frame)")
                file_format = image.format
                image.load()
                upright = ImageOps.exif_transpose(image)
    except FileNotFoundError:
        raise GlyphfuseError(f"{label}: no such file") from None
    except IsADirectoryError:
        raise GlyphfuseError(f"{label}: is a folder, not a picture") from None
    except UnidentifiedImageError:
        raise GlyphfuseError(f"{label}: not a picture glyphfuse can read (JPEG, PNG, WebP, GIF, BMP, TIFF)") from None
    except Image.DecompressionBombError:
        raise GlyphfuseError(f"{label}: picture is more than the {max_pixels / 1e6:.0f} Mpx that edit decodes") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise GlyphfuseError(f"{label}: unreadable or truncated picture ({exc})") from None
    image = _normalised(upright)
    image.info.pop("exif", None)  # orientation applied: an EXIF tag written back would turn it again
    return Picture(image, _rgb_of(image), file_format, label)


def output_format(path: str | Path) -> str:
    """PIL's format for the extension of ``path``; GlyphfuseError for an unknown one."""
    path = Path(path)
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None or fmt not in Image.SAVE:
        raise GlyphfuseError(f"{path}: unknown picture file extension {path.suffix!r}; use .png, .jpg, .webp, .tif or .bmp")
    return fmt


def check_picture_output(path: str | Path, *, overwrite: bool = False) -> str:
    """Check before any work that ``path`` can be written (its format from the extension); an
    existing file needs ``overwrite``. Returns the format."""
    path = Path(path)
    fmt = output_format(path)
    if path.exists() and not overwrite:
        raise GlyphfuseError(f"{path}: already exists; pass --overwrite to replace it")
    check_writable(path)
    return fmt


def encode_picture(image: Image.Image, fmt: str) -> bytes:
    """``image`` encoded as ``fmt``, converted only where the format cannot hold its mode (JPEG has
    no alpha: RGBA becomes RGB; 16-bit goes to 8-bit where the format has no 16-bit grey)."""
    if fmt in ("JPEG", "MPO"):
        if image.mode not in ("RGB", "L", "CMYK"):
            image = _rgb_of(image) if image.mode in SIXTEEN_BIT_MODES else image.convert("RGB")
        options = {"quality": 95, "subsampling": 0}
    elif fmt == "WEBP":
        if image.mode not in ("RGB", "RGBA"):
            image = image.convert("RGBA" if "A" in image.mode else "RGB") if image.mode not in SIXTEEN_BIT_MODES else _rgb_of(image)
        options = {"lossless": True, "exact": True}
    elif fmt == "PNG":
        if image.mode == "CMYK":
            image = image.convert("RGB")
        options = {}
    elif fmt == "TIFF":
        options = {"compression": "tiff_deflate"}
    else:
        if image.mode not in ("RGB", "L", "RGBA"):
            image = _rgb_of(image) if image.mode in SIXTEEN_BIT_MODES else image.convert("RGB")
        options = {}
    buffer = io.BytesIO()
    icc = image.info.get("icc_profile")
    if icc and fmt in ("JPEG", "PNG", "WEBP", "TIFF"):
        options["icc_profile"] = icc
    try:
        image.save(buffer, format=fmt, **options)
    except (OSError, ValueError, KeyError) as exc:
        raise GlyphfuseError(f"cannot write a {image.mode} picture as {fmt} ({exc}); use .png") from None
    return buffer.getvalue()


def save_picture(image: Image.Image, path: str | Path) -> Path:
    """Write ``image`` atomically in the format of ``path``'s extension."""
    path = Path(path)
    write_bytes_atomic(path, encode_picture(image, output_format(path)))
    return path
