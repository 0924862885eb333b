"""The task conformance suite: every registered task passes; each broken task fails with a precise message."""

from __future__ import annotations

import numpy as np
import pytest
from torch import nn

from fedchain.config import FedChainConfig
from fedchain.errors import ConfigError
from fedchain.tasks import TaskConformanceError, available_tasks, check_task, task_checks
from tests.tasks.guide_task import DigitsCNN

#: Small models for the checks (mnist-wide's width is its size).
SMALL = {"model_width": 8, "hidden_units": 16}


@pytest.mark.parametrize("name", sorted(available_tasks()))
def test_every_registered_task_conforms(name):
    report = check_task(name, config=FedChainConfig(task=name, **SMALL))
    assert report.checks == tuple(task_checks())
    assert report.parameters > 0 and report.num_classes == 10
    assert report.dp_path in ("fused", "ew", "hooks")


def test_the_guide_task_conforms():
    report = check_task(DigitsCNN)
    assert (report.name, report.parameters, report.input_shape, report.dp_path) == ("digits-cnn", 1386, (1, 8, 8), "ew")


def test_dp_path_is_fused_for_linear_models_and_opacus_for_convolutions():
    assert check_task("mnist-wide", config=FedChainConfig(model_width=8)).dp_path == "fused"
    assert check_task("mnist-cnn", checks=["check_training"]).dp_path == "ew"


class WithBatchNorm(DigitsCNN):
    def make_model(self) -> nn.Module:
        return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(256, 10))


class NondeterministicInit(DigitsCNN):
    def make_model(self) -> nn.Module:
        model = super().make_model()
        with np.errstate(all="ignore"):
            noise = np.random.default_rng().normal(size=model[-1].bias.shape)  # not from torch's seeded generator
        model[-1].bias.data += nn.Parameter(model[-1].bias.data.new_tensor(noise)).data
        return model


class PercentAccuracy(DigitsCNN):
    def evaluate(self, model, x, y):
        loss, accuracy = super().evaluate(model, x, y)
        return loss, 100.0 * accuracy


class DictEvaluation(DigitsCNN):
    def evaluate(self, model, x, y):  # type: ignore[override]
        loss, accuracy = super().evaluate(model, x, y)
        return {"loss": loss, "accuracy": accuracy}


class WrongOutputs(DigitsCNN):
    def make_model(self) -> nn.Module:
        return nn.Sequential(nn.Flatten(), nn.Linear(64, 3))


class WrongInputShape(DigitsCNN):
    @property
    def input_shape(self) -> tuple[int, ...]:
        return (64,)


class TouchesTheGlobalRng(DigitsCNN):
    def build_model(self, *, seed=None):
        import torch

        torch.manual_seed(0 if seed is None else seed)  # seeds, never restores
        return self.make_model()


class _Detach(nn.Module):
    def forward(self, x):
        return x.detach()


class Untrainable(DigitsCNN):
    def make_model(self) -> nn.Module:
        return nn.Sequential(*super().make_model(), _Detach())  # no gradient reaches the weights


@pytest.mark.parametrize(
    ("task", "check", "message"),
    [
        (WithBatchNorm, "check_dp_layers", "1 (BatchNorm2d): BatchNorm mixes the examples of a batch"),
        (NondeterministicInit, "check_deterministic", "two builds with seed 0 differ at parameter '5.bias'"),
        (TouchesTheGlobalRng, "check_deterministic", "build_model changed torch's global random generator"),
        (PercentAccuracy, "check_evaluate", "it must be a share in [0, 1], not a percent"),
        (DictEvaluation, "check_evaluate", "it must return a pair (loss, accuracy)"),
        (WrongOutputs, "check_forward", "forward gave (24, 3), expected logits of shape (batch, num_classes)"),
        (WrongInputShape, "check_forward", "forward on a batch of shape (24, 64) raised"),
        (Untrainable, "check_training", "check_training failed for task 'digits-cnn': training failed: "),
    ],
)
def test_a_broken_task_fails_the_check_that_catches_it(task, check, message):
    with pytest.raises(TaskConformanceError) as info:
        check_task(task)
    assert info.value.check == check and info.value.task == "digits-cnn"
    assert str(info.value).startswith(f"{check} failed for task 'digits-cnn': ")
    assert message in str(info.value)


def test_unknown_check_name_is_refused():
    with pytest.raises(ConfigError, match="'check' parameter must be one of 'check_dp_layers'"):
        check_task("digits-mlp", checks=["check_speed"])
