"""Small models shared by the tests (importable because pytest puts tests/ on sys.path)."""

import dataclasses

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
