"""The order in which training sees its data, and the batches it is served in.

Every epoch is a permutation of the dataset drawn from a generator seeded by (seed, epoch); each
rank takes its stride of it (``rank::world_size``, cut so every rank has the same length), and
batches are taken by position. A data position is therefore two integers, (epoch, index =
examples of this rank's shard already consumed), and a resumed run continues at exactly the
batch it would have seen (:func:`batch_stream`).

Loading happens in DataLoader workers. A worker's copy of the dataset records the problems it
finds (a corrupt image ...) where the trainer never sees them, so every item carries them back
(:class:`ReportingView`) and the stream adds them to ``dataset.problems``.
"""

from __future__ import annotations

import hashlib
import signal
from pathlib import Path
from typing import Iterator

import torch
from torch.utils.data import DataLoader, Dataset

from glyphfuse.core.config import ModelConfig
from glyphfuse.core.errors import GlyphfuseError
from glyphfuse.data.imagefolder import ImageTextDataset


def derived_seed(*parts: int) -> int:
    """A 63-bit seed derived from integers (stable across processes and Python versions)."""
    digest = hashlib.sha256(":".join(str(int(p)) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def epoch_shard(num_examples: int, seed: int, epoch: int, rank: int = 0, world_size: int = 1) -> list[int]:
    """This rank's example indices for ``epoch``: the epoch's permutation (a torch.Generator seeded
    by (seed, epoch)) strided by rank, cut to the same length on every rank."""
    generator = torch.Generator().manual_seed(derived_seed(seed, epoch, 0x5EED))
    order = torch.randperm(num_examples, generator=generator)
    per_rank = num_examples // world_size
    return order[rank::world_size][:per_rank].tolist()


def open_training_data(data: str | Path, model_config: ModelConfig) -> ImageTextDataset:
    """The training dataset of an image folder, sized for ``model_config``; transcripts longer
    than its text encoder reads are skipped (truncated, they would not match their images)."""
    root = Path(data)
    if not data or not root.is_dir():
        raise GlyphfuseError(f"{root}: training data folder not found")
    return ImageTextDataset(root, model_config.image_size, model_config.channels, max_text_tokens=model_config.text.max_length, log=False)


class ReportingView(Dataset):
    """What the DataLoader reads: each item also carries the problems that loading it found (and
    the error when no example at all is usable)."""

    def __init__(self, dataset: ImageTextDataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        known = len(self.dataset.problems)
        try:
            image, text, controls = self.dataset[index]
        except GlyphfuseError as exc:
            return None, None, None, self.dataset.problems[known:], str(exc)
        return image, text, controls, self.dataset.problems[known:], None


def collate(items: list) -> tuple[torch.Tensor | None, list[str], list, list[str], str | None]:
    """(images (B, C, H, W), texts, scene controls (each None or SceneControls), problems found,
    error or None) from ReportingView items."""
    problems = [problem for *_, found, _ in items for problem in found]
    errors = [error for *_, error in items if error is not None]
    if errors:
        return None, [], [], problems, errors[0]
    images, texts, controls = zip(*[item[:3] for item in items])
    return torch.stack(images), list(texts), list(controls), problems, None


def ignore_stop_signals(worker_id: int) -> None:
    """DataLoader worker init: leave SIGINT/SIGTERM to the trainer. Ctrl-C reaches the whole
    process group, and a worker that inherited the trainer's handler would print its message
    again."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def batch_stream(
    dataset: ImageTextDataset, *, batch_size: int, seed: int, epoch: int = 0, index: int = 0, rank: int = 0,
    world_size: int = 1, num_workers: int = 0, pin_memory: bool = False,
) -> Iterator[tuple[torch.Tensor, list[str], list, int, int]]:
    """Yield (images (B, C, H, W), texts, scene controls, epoch, index) forever, starting at data position
    (epoch, index); the yielded position is the one AFTER the batch. Incomplete final batches
    are dropped so every step has the same shape on every rank. Problems found while loading
    (in worker processes too) are added to ``dataset.problems``."""
    while True:
        shard = epoch_shard(len(dataset), seed, epoch, rank, world_size)
        usable = len(shard) // batch_size * batch_size
        batches = [shard[i : i + batch_size] for i in range(index, usable - batch_size + 1, batch_size)]
        if batches:
            loader = DataLoader(
                ReportingView(dataset),
                batch_sampler=batches,
                num_workers=num_workers,
                collate_fn=collate,
                worker_init_fn=ignore_stop_signals,
                pin_memory=pin_memory,
            )
            for images, texts, controls, problems, error in loader:
                dataset.add_problems(problems)
                if error is not None:
                    raise GlyphfuseError(error)
                index += batch_size
                if index + batch_size > usable:  # nothing more in this epoch: normalise the position
                    yield images, texts, controls, epoch + 1, 0
                else:
                    yield images, texts, controls, epoch, index
        epoch, index = epoch + 1, 0
