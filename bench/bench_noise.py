"""The cost of unpredictable DP noise: CSPRNG draws against the seeded torch generator they replace.

Before issue 14 a member's DP sampling and noise came from ``torch.Generator`` objects seeded
from the run seed (replayable by anyone); now they come from
:class:`~fedchain.privacy.randomness.SecureRandomness` (ChaCha20 keyed from ``os.urandom``, four
Box-Muller samples per value). Measured in the same run, CPU, one thread:

- draws: seconds per million Gaussian values, secure vs ``torch.normal`` with a generator;
- training: one DP round (``train_private``) on the digits MLP (fused path, 1,437 rows) and on a
  small CNN through Opacus (``hooks``), secure vs seeded.

Writes ``out_dir/noise.json``. Run: ``.venv/bin/python -m bench noise``.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fedchain.data import load_digits_split
from fedchain.privacy import DPConfig, PrivacyAccountant, PrivacyBudget, SecureRandomness, train_private

REPEATS = 5


def _median_seconds(fn: Callable[[], Any], repeats: int = REPEATS) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _draws() -> dict[str, float]:
    size = 1_000_000
    generator = torch.Generator().manual_seed(0)
    secure = SecureRandomness()
    seeded_s = _median_seconds(lambda: torch.normal(0.0, 1.0, (size,), generator=generator))
    secure_s = _median_seconds(lambda: secure.normal((size,), std=1.0, dtype=torch.float32))
    return {"seeded_s_per_million": seeded_s, "secure_s_per_million": secure_s, "ratio": secure_s / seeded_s}


def _cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Unflatten(1, (1, 8, 8)),
        nn.Conv2d(1, 8, 3, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(8 * 64, 10),
    )


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))


def _training(make_model: Callable[[], nn.Module], mode: str) -> dict[str, Any]:
    x, y, _, _ = load_digits_split(0.2)
    config = DPConfig(
        budget=PrivacyBudget(epsilon=1e6, delta=1e-5),
        noise_multiplier=1.0,
        max_grad_norm=0.5,
        grad_sample_mode=mode,
    )

    def one_round(seed: int | None) -> Callable[[], Any]:
        def run() -> Any:
            return train_private(
                make_model(),
                x,
                y,
                epochs=1,
                batch_size=96,
                learning_rate=0.3,
                momentum=0.9,
                config=config,
                accountant=PrivacyAccountant(),
                seed=seed,
            )

        return run

    seeded_s = _median_seconds(one_round(0))
    secure_s = _median_seconds(one_round(None))
    return {
        "grad_sample_mode": mode,
        "rows": int(x.shape[0]),
        "parameters": sum(p.numel() for p in make_model().parameters()),
        "seeded_round_s": seeded_s,
        "secure_round_s": secure_s,
        "ratio": secure_s / seeded_s,
    }


def run(out_dir: Path) -> dict[str, Any]:
    """Measure and write ``out_dir/noise.json``; return its content."""
    torch.set_num_threads(1)
    report: dict[str, Any] = {
        "draws": _draws(),
        "mlp_fused": _training(_mlp, "fused"),
        "cnn_opacus_hooks": _training(_cnn, "hooks"),
        "repeats": REPEATS,
        "threads": 1,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "noise.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    draws = report["draws"]
    print(
        f"noise draws: seeded {draws['seeded_s_per_million'] * 1e3:.1f} ms/M, "
        f"secure {draws['secure_s_per_million'] * 1e3:.1f} ms/M (ratio {draws['ratio']:.2f})"
    )
    for name in ("mlp_fused", "cnn_opacus_hooks"):
        row = report[name]
        print(
            f"{name}: seeded {row['seeded_round_s'] * 1e3:.0f} ms, secure {row['secure_round_s'] * 1e3:.0f} ms "
            f"per DP round (ratio {row['ratio']:.2f})"
        )
    print(f"wrote {path}")
    return report


if __name__ == "__main__":
    run(Path(__file__).parent / "results")
