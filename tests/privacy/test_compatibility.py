"""check_dp_compatible / dp_compatibility: each offending layer by dotted name and type, with the fix."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from opacus.layers import DPLSTM
from opacus.validators import ModuleValidator
from torch import nn

from fedchain.errors import ConfigError, DPIncompatibleModelError, PrivacyError
from fedchain.privacy import (
    GRAD_SAMPLE_MODES,
    DPConfig,
    PrivacyAccountant,
    PrivacyBudget,
    check_dp_compatible,
    dp_compatibility,
    opacus_mode_for,
    train_private,
)


class _Scaled(nn.Module):
    """A layer of its own: an elementwise weight, which ExpandedWeights has no rule for."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight


class _Masked(nn.Linear):
    """A trainable Linear holding a buffer: Opacus's hooks refuse it (a buffer is not private)."""

    def __init__(self) -> None:
        super().__init__(4, 4)
        self.mask: torch.Tensor
        self.register_buffer("mask", torch.ones(4, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x, self.weight * self.mask, self.bias)


class _Net(nn.Module):
    def __init__(self, norm: nn.Module) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 4, 3), norm, nn.ReLU())
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(4 * 6 * 6, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@pytest.mark.parametrize("mode", GRAD_SAMPLE_MODES)
def test_supported_cnn_and_embedding_models_pass(mode: str) -> None:
    cnn = _Net(nn.GroupNorm(2, 4))
    embedding = nn.Sequential(nn.Embedding(20, 8), nn.LayerNorm(8), nn.Flatten(), nn.Linear(40, 3))
    expected = ["has trainable parameters and is not nn.Linear"] if mode == "fused" else []
    for model in (cnn, embedding):
        problems = dp_compatibility(model, grad_sample_mode=mode)
        assert all(any(e in p for e in expected) for p in problems) and bool(problems) == bool(expected)
    check_dp_compatible(cnn)


def test_batchnorm_is_named_by_its_dotted_path_with_opacus_words_and_the_fix() -> None:
    model = _Net(nn.BatchNorm2d(4))
    problems = dp_compatibility(model)
    assert problems == [
        'features.1 (BatchNorm2d): BatchNorm mixes the examples of a batch (Opacus: "BatchNorm cannot support '
        'training with differential privacy."); replace it with GroupNorm '
        "(opacus.validators.ModuleValidator.fix does this)"
    ]
    with pytest.raises(DPIncompatibleModelError) as info:
        check_dp_compatible(model)
    assert isinstance(info.value, PrivacyError)
    assert info.value.problems == tuple(problems) and info.value.grad_sample_mode == "auto"
    assert str(info.value) == f"DP-SGD (grad_sample_mode 'auto') cannot train this model:\n  - {problems[0]}"
    # The fix named works: Opacus's fixer makes the model pass.
    assert dp_compatibility(ModuleValidator.fix(model)) == []


def test_every_offending_layer_is_listed_once() -> None:
    model = nn.Sequential(
        nn.LSTM(4, 4, batch_first=True),
        nn.InstanceNorm1d(4, affine=True, track_running_stats=True),
        nn.BatchNorm1d(4, affine=False),  # frozen, still mixes the batch
        nn.MultiheadAttention(4, 2),
    )
    problems = dp_compatibility(model, grad_sample_mode="ew")
    assert [p.split(":", 1)[0] for p in problems] == [
        "0 (LSTM)",
        "1 (InstanceNorm1d)",
        "2 (BatchNorm1d)",
        "3 (MultiheadAttention)",
    ]
    assert "opacus.layers.DPLSTM" in problems[0] and "track_running_stats=False" in problems[1]
    assert "opacus.layers.DPMultiheadAttention" in problems[3]
    assert all('(Opacus: "' in p for p in problems)


def test_a_layer_without_a_per_sample_rule_in_the_mode_is_refused_there_only() -> None:
    model = nn.Sequential(nn.Linear(4, 4), _Scaled(4), nn.PReLU(), nn.Linear(4, 2))
    ew = dp_compatibility(model, grad_sample_mode="ew")
    assert [p.split(":", 1)[0] for p in ew] == ["1 (_Scaled)", "2 (PReLU)"]
    assert all("ExpandedWeights (Opacus 'ew') has no per-sample gradient rule" in p and "'hooks'" in p for p in ew)
    for mode in ("hooks", "ghost", "functorch", "auto"):
        assert dp_compatibility(model, grad_sample_mode=mode) == [], mode
    assert opacus_mode_for(model) == "hooks"
    assert opacus_mode_for(_Net(nn.GroupNorm(2, 4))) == "ew"


class _TiedEmbedding(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.Embedding(20, 8)
        self.out = nn.Linear(8, 20)
        self.out.weight = self.embedding.weight  # tied input and output embeddings

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.embedding(x).mean(dim=1))


def test_auto_uses_ghost_clipping_for_embedding_models_without_tied_weights() -> None:
    bag = nn.Sequential(nn.Embedding(20, 8), nn.Flatten(), nn.Linear(40, 3))
    assert opacus_mode_for(bag) == "ghost"
    assert opacus_mode_for(nn.Sequential(nn.Embedding(20, 8), nn.LayerNorm(8), nn.Flatten(), nn.Linear(40, 3))) == (
        "ghost"
    )
    assert opacus_mode_for(_TiedEmbedding()) == "ew"
    assert opacus_mode_for(nn.Sequential(nn.Embedding(20, 8), _Scaled(8))) == "hooks"  # no native rule for _Scaled


def test_buffers_on_a_trainable_layer_refused_by_hooks_but_not_ew() -> None:
    model = nn.Sequential(_Masked(), nn.Linear(4, 2))
    hooks = dp_compatibility(model, grad_sample_mode="hooks")
    assert len(hooks) == 1 and hooks[0].startswith("0 (_Masked): Opacus's 'hooks' mode refuses a trainable layer")
    assert "requires_grad_(False)" in hooks[0]
    assert dp_compatibility(model, grad_sample_mode="ew") == []
    assert dp_compatibility(model) == []  # auto picks ew for it
    # With a PReLU too, no Opacus mode can train it: auto reports what its most general mode refuses.
    worse = nn.Sequential(_Masked(), nn.PReLU(), nn.Linear(4, 2))
    assert [p.split(":", 1)[0] for p in dp_compatibility(worse)] == ["0 (_Masked)"]


def test_models_with_nothing_to_train_and_bad_arguments() -> None:
    frozen = nn.Linear(4, 2).requires_grad_(False)
    assert dp_compatibility(frozen) == ["<model>: it has no trainable parameters; DP-SGD has nothing to train"]
    with pytest.raises(ConfigError, match="grad_sample_mode"):
        dp_compatibility(nn.Linear(4, 2), grad_sample_mode="vmap")
    with pytest.raises(ConfigError, match=r"torch\.nn\.Module"):
        dp_compatibility("model")  # type: ignore[arg-type]
    assert dp_compatibility(nn.Sequential(DPLSTM(4, 4, batch_first=True)), grad_sample_mode="hooks") == []


def test_train_private_refuses_before_any_step_or_budget_check() -> None:
    model = nn.Sequential(nn.Linear(8, 8), nn.LSTM(8, 8))
    before = [p.detach().clone() for p in model.parameters()]
    ledger = PrivacyAccountant()
    # A budget the round could never fit: the model is refused first, by name.
    config = DPConfig(budget=PrivacyBudget(epsilon=1e-6, delta=1e-5), noise_multiplier=0.5)
    x, y = np.zeros((40, 8), np.float32), np.arange(40) % 2
    with pytest.raises(DPIncompatibleModelError, match=r"1 \(LSTM\)"):
        train_private(model, x, y, epochs=1, batch_size=8, learning_rate=0.1, config=config, accountant=ledger)
    assert len(ledger) == 0
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
