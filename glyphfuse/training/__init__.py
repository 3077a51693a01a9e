"""Training: one loop for every model, and what surrounds it.

* ``loop``: the training loop (exact resume, signals, torchrun, EMA, spike guard);
* ``config``: the training config (round-trips through run.json), LR schedules;
* ``batches``: the data order by position; ``progress``: the progress display;
* ``run_folder``: everything a run writes (checkpoints, metrics, samples, lock);
* ``sr``: super-resolution training (the loop's hooks); ``warm_start``: an SR model from a base.

The short names below load their module on first use (``--help`` stays fast).
"""

from glyphfuse.core.exports import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    "train": "loop", "TrainResult": "loop", "TrainConfig": "config", "build_train_config": "config",
    "train_sr": "sr", "warm_start_checkpoint": "warm_start", "warm_start_model": "warm_start",
})
