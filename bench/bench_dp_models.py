"""Benchmark: DP-SGD epoch time over non-private epoch time for models beyond the MLP (issue 15).

For each model, process CPU time per epoch of :func:`~fedchain.privacy.train_private` in each
Opacus ``grad_sample_mode`` (``ew``, ``hooks``, ``ghost``, ``functorch``) and in ``auto`` (what
fedchain picks), over :func:`~fedchain.privacy.train_plain` on the same model, data and batch
size. "Per epoch" is the marginal cost of an epoch, ``(t(E epochs) - t(1 epoch)) / (E - 1)``,
fastest of interleaved repeats (load on a shared machine only adds time), so per-call setup
(planning, ``make_private``) is left out; the whole 1-epoch call is reported beside it. One
torch thread, as a member on a shared core would run.

Models:

- ``cnn``: the ``mnist-cnn`` task's model (``fedchain.tasks``: two ``Conv2d 3x3 -> GroupNorm ->
  ReLU -> MaxPool`` blocks of 16 and 32 channels and a ``Linear`` head on 1x28x28 images, 20,586
  parameters). Images: sklearn digits upsampled to 28x28 (bilinear), scaled to [0, 1].
- ``embedding``: token ids ``(n, 32)`` over a 2,000-word vocabulary -> ``Embedding(2000, 16)``
  -> mean over the sequence -> ``Linear(16, 10)`` (32,170 parameters, nearly all in the
  embedding table); tokens are digits' pixel intensities (0..16) hashed with their position.
- ``embedding_large``: the same over a 10,000-word vocabulary, ``Embedding(10000, 32)`` (320,330
  parameters): per-sample embedding gradients are ``batch x 10,000 x 32`` numbers a step.

Sizes: ``FEDCHAIN_BENCH_DP_ROWS`` rows (default 512), batch 64, ``FEDCHAIN_BENCH_DP_EPOCHS``
epochs for the long call (default 3), ``FEDCHAIN_BENCH_DP_REPEATS`` repeats (default 3).
Writes ``out_dir/dp_models.json``. Run: ``.venv/bin/python -m bench dp_models``.
"""

from __future__ import annotations

import copy
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.datasets import load_digits
from torch import nn

from fedchain.privacy import DPConfig, PrivacyAccountant, PrivacyBudget, train_plain, train_private
from fedchain.tasks import create_task

OPACUS = ("ew", "hooks", "ghost", "functorch")
BATCH = 64
HYPER: dict[str, Any] = {"batch_size": BATCH, "learning_rate": 0.05, "momentum": 0.9}


class BagOfEmbeddings(nn.Module):
    """Token ids ``(batch, seq)`` -> mean of their embeddings -> logits."""

    def __init__(self, vocabulary: int = 2000, dim: int = 16, num_classes: int = 10) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocabulary, dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embedding(x).mean(dim=1))


def _cnn() -> tuple[nn.Module, str]:
    return create_task("mnist-cnn").build_model(seed=0), "fedchain.tasks create_task('mnist-cnn').build_model(seed=0)"


def _data(rows: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    x, y = load_digits(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(y))[:rows]
    x, y = x[order], y[order].astype(np.int64)
    images = torch.nn.functional.interpolate(
        torch.tensor(x / 16.0, dtype=torch.float32).reshape(-1, 1, 8, 8), size=(28, 28), mode="bilinear"
    ).numpy()
    positions = np.arange(64)[None, :] * 17
    tokens = ((x.astype(np.int64) + positions) * 2654435761 % 2000)[:, ::2].copy()  # (rows, 32) ids
    return {"cnn": (images, y), "embedding": (tokens, y), "embedding_large": (tokens * 7919 % 10_000, y)}


def _call(kind: str, start: nn.Module, x: np.ndarray, y: np.ndarray, epochs: int) -> Callable[[], Any]:
    if kind == "plain":
        return lambda: train_plain(copy.deepcopy(start), x, y, epochs=epochs, **HYPER, seed=0)
    config = DPConfig(budget=PrivacyBudget(epsilon=1e6, delta=1e-5), noise_multiplier=1.0, grad_sample_mode=kind)
    return lambda: train_private(
        copy.deepcopy(start), x, y, epochs=epochs, **HYPER, config=config, accountant=PrivacyAccountant(), seed=0
    )


def _measure(start: nn.Module, x: np.ndarray, y: np.ndarray, epochs: int, repeats: int) -> dict[str, Any]:
    kinds = ("plain", "auto", *OPACUS)
    calls = {(kind, e): _call(kind, start, x, y, e) for kind in kinds for e in (1, epochs)}
    picked = _call("auto", start, x, y, 1)().grad_sample_mode  # also the warm-up of auto
    for call in calls.values():
        call()  # warm-up
    best = dict.fromkeys(calls, float("inf"))
    for _ in range(repeats):
        for key, call in calls.items():
            cpu = time.process_time()
            call()
            best[key] = min(best[key], time.process_time() - cpu)
    per_epoch = {kind: (best[(kind, epochs)] - best[(kind, 1)]) / (epochs - 1) for kind in kinds}
    rows: dict[str, Any] = {}
    for kind in kinds:
        rows[kind] = {
            "cpu_ms_per_epoch": round(1e3 * per_epoch[kind], 2),
            "cpu_ms_one_epoch_call": round(1e3 * best[(kind, 1)], 2),
            "ratio_to_plain": round(per_epoch[kind] / per_epoch["plain"], 3),
        }
    return {"auto_picks": picked, "modes": rows}


def run(out_dir: Path) -> dict[str, Any]:
    rows = int(os.environ.get("FEDCHAIN_BENCH_DP_ROWS", "512"))
    epochs = int(os.environ.get("FEDCHAIN_BENCH_DP_EPOCHS", "3"))
    repeats = int(os.environ.get("FEDCHAIN_BENCH_DP_REPEATS", "3"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        data = _data(rows)
        cnn, source = _cnn()
        torch.manual_seed(0)
        models = {"cnn": cnn, "embedding": BagOfEmbeddings(), "embedding_large": BagOfEmbeddings(10_000, 32)}
        results: dict[str, Any] = {}
        for name, model in models.items():
            x, y = data[name]
            print(f"{name}: {sum(p.numel() for p in model.parameters()):,} parameters, x {x.shape} {x.dtype}")
            results[name] = _measure(model, x, y, epochs, repeats)
            results[name]["parameters"] = sum(p.numel() for p in model.parameters())
            results[name]["x_shape"] = list(x.shape)
            plain = results[name]["modes"]["plain"]["cpu_ms_per_epoch"]
            print(f"  plain {plain:.1f} ms/epoch; auto picks {results[name]['auto_picks']!r}")
            for kind, row in results[name]["modes"].items():
                if kind != "plain":
                    print(f"  {kind:9s} {row['cpu_ms_per_epoch']:8.1f} ms/epoch  {row['ratio_to_plain']:5.2f}x plain")
        results["cnn"]["model"] = source
        results["embedding"]["model"] = "bench.bench_dp_models.BagOfEmbeddings(2000, 16)"
        results["embedding_large"]["model"] = "bench.bench_dp_models.BagOfEmbeddings(10000, 32)"
    finally:
        torch.set_num_threads(threads)
    report = {
        "benchmark": "dp_models",
        "what": "DP-SGD CPU ms per epoch / non-private (train_plain), marginal epochs, fastest of repeats",
        "rows": rows,
        "batch_size": BATCH,
        "epochs_long_call": epochs,
        "repeats": repeats,
        "torch_threads": 1,
        "noise_multiplier": 1.0,
        "machine": {"python": platform.python_version(), "torch": torch.__version__, "cpus": os.cpu_count()},
        "load_average": list(os.getloadavg()),
        "results": results,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "dp_models.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    run(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "results")
