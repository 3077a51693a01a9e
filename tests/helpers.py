"""Small models and harnesses shared by the tests (importable because pytest puts tests/ on sys.path)."""

import contextlib
import dataclasses
import sys
import threading
import time

import pytest
import torch

from glyphfuse.core.config import ModelConfig, get_preset
from glyphfuse.core.model import GlyphModel


def micro_config(name: str = "tiny") -> ModelConfig:
    """The tiny preset shrunk to 16 px and ~100k parameters (fast on a 2-core CPU)."""
    config = get_preset("tiny")
    config.name = name
    config.image_size = 16
    config.unet = dataclasses.replace(config.unet, base_channels=8, head_channels=8)
    config.text = dataclasses.replace(config.text, width=16, head_dim=8)
    return config


def random_model(config: ModelConfig, seed: int = 0) -> GlyphModel:
    """A model with every parameter random (the zero-initialised output layers would otherwise
    make every output 0 and comparisons between outputs vacuous)."""
    torch.manual_seed(seed)
    model = GlyphModel(config)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.1)
    return model.eval()


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """One torch thread for a test module (import it there: an autouse fixture). Micro models on a
    busy 2-core box run several times faster single-threaded, and a reference and a resumed run
    must use the same thread count to agree bit for bit."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def micro_scene_config(name: str = "tiny-scenes") -> ModelConfig:
    """micro_config in RGB with every scene control (kind, text and background colour)."""
    from glyphfuse.core.controls import SCENE_KINDS

    config = micro_config(name)
    config.channels = 3
    config.scene_kinds = SCENE_KINDS
    config.unet = dataclasses.replace(config.unet, in_channels=3, out_channels=3)
    return config


def run_cli(monkeypatch, capsys, *args) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of ``glyphfuse ARGS`` run through cli.main()."""
    from glyphfuse import cli

    monkeypatch.setattr(sys, "argv", ["glyphfuse", *map(str, args)])
    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit) as done:
        cli.main()
    captured = capsys.readouterr()
    return done.value.code or 0, captured.out, captured.err


@contextlib.contextmanager
def served_in_thread(app):
    """The base URL of ``app`` served by uvicorn in a thread on a free port; stopped afterwards."""
    import uvicorn

    from glyphfuse.serve import server

    sock = server.bind("127.0.0.1", 0)
    uv = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=uv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not uv.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield server.url_of(sock)
    finally:
        uv.should_exit = True
        thread.join(15)
        sock.close()
    assert not thread.is_alive()
