"""Files written so that nothing is ever half-written, and read with one-line errors.

Every output of glyphfuse goes through :func:`write_bytes_atomic` (temporary file beside the
target, fsync, ``os.replace``): a crash, a kill or a full disk leaves either the old file or the
complete new one, and a failure is a one-line :class:`GlyphfuseError` naming the path and the
cause. Folders of files (checkpoints) use the same idea in :mod:`glyphfuse.core.checkpoint`.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from glyphfuse.core.errors import GlyphfuseError




def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return  # e.g. Windows: directories cannot be opened
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def output_error(path: str | Path, exc: OSError) -> GlyphfuseError:
    """The one-line error for an output that cannot be written: the path and the cause (disk
    full, read-only file system, permission denied, a file where a folder should be ...)."""
    path = Path(path)
    for ancestor in path.parents:
        if ancestor.exists():
            if not ancestor.is_dir():
                return GlyphfuseError(f"{path}: cannot write: {ancestor} is a file, not a folder")
            break
    return GlyphfuseError(f"{path}: cannot write ({exc.strerror or exc})")


def check_writable(path: str | Path) -> None:
    """GlyphfuseError unless a file can be written at ``path``: its folder is created if needed and
    a probe file is created and removed there. Call it before expensive work, not after."""
    path = Path(path)
    if path.is_dir():
        raise GlyphfuseError(f"{path}: is a folder; give a file name")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".probe")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise output_error(path, exc) from None


def write_bytes_atomic(path: str | Path, data: bytes, *, durable: bool = True) -> None:
    """Write ``data`` to a temporary file next to ``path`` and os.replace it over ``path``, so
    ``path`` is always either the old or the complete new file. ``durable``: fsync before the
    rename (a crash cannot leave an empty file). A failure (disk full, read-only ...) removes the
    temporary file and raises a one-line GlyphfuseError naming ``path`` and the cause."""
    path = Path(path)
    tmp_name = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.chmod(tmp_name, 0o666 & ~umask())  # mkstemp makes 0600 files; use the usual permissions
        os.replace(tmp_name, path)
    except BaseException as exc:
        if tmp_name is not None:
            Path(tmp_name).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise output_error(path, exc) from None
        raise


def json_bytes(obj: Any, *, sort_keys: bool = True) -> bytes:
    """``obj`` as the JSON glyphfuse writes: indented UTF-8 with a final newline."""
    return (json.dumps(obj, indent=2, sort_keys=sort_keys, ensure_ascii=False) + "\n").encode("utf-8")


def write_json_atomic(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented UTF-8 JSON, atomically."""
    write_bytes_atomic(path, json_bytes(obj))


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write UTF-8 ``text`` atomically."""
    write_bytes_atomic(path, text.encode("utf-8"))


def read_json(path: str | Path, what: str = "JSON file") -> Any:
    """The parsed JSON of ``path``; a missing, unreadable or invalid file is a one-line
    GlyphfuseError naming it."""
    path = Path(path)
    if not path.is_file():
        raise GlyphfuseError(f"{path}: no such {what}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise GlyphfuseError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except (ValueError, RecursionError) as exc:
        raise GlyphfuseError(f"{path}: not valid JSON ({exc})") from None
    except OSError as exc:
        raise GlyphfuseError(f"{path}: cannot read ({exc.strerror or exc})") from None
