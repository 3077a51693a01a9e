"""Device policy: asking for a device this machine lacks is a clear error, never a fallback."""

import pytest
import torch

from glyphfuse.core.device import resolve_device
from glyphfuse.core.errors import GlyphfuseError


def test_cuda_without_cuda_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # also holds on a GPU machine
    for spec in ("cuda", "cuda:1", "CUDA"):
        with pytest.raises(GlyphfuseError, match="CUDA is not available") as error:
            resolve_device(spec)
        assert "--device cpu" in str(error.value) and "\n" not in str(error.value)
    assert resolve_device("auto").type in ("cpu", "mps")
    assert resolve_device("cpu") == torch.device("cpu")


def test_unknown_device_is_a_clear_error():
    with pytest.raises(GlyphfuseError, match="unknown device 'tpu'"):
        resolve_device("tpu")


def test_cli_device_cuda_without_cuda_is_a_clear_error(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from glyphfuse.cli import app
    from glyphfuse.data.imagefolder import MetadataWriter, write_example
    from PIL import Image

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    data = tmp_path / "data"
    data.mkdir()
    with MetadataWriter(data) as meta:
        for index in range(4):
            meta.write(write_example(data, f"{index}", Image.new("L", (16, 16), 60 * index), f"t{index}"), f"t{index}")
    result = CliRunner().invoke(app, ["train-base", str(data), "--out", str(tmp_path / "run"), "--model", "tiny", "--steps", "1", "--device", "cuda", "--no-progress"])
    assert result.exit_code != 0
    assert isinstance(result.exception, GlyphfuseError), result.output
    assert "CUDA is not available" in str(result.exception)
