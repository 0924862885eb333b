"""The task registry: names, dotted paths, errors that list what exists, and the config's task defaults."""

from __future__ import annotations

import subprocess
import sys

import pytest

from fedchain.config import FedChainConfig
from fedchain.errors import ConfigError
from fedchain.tasks import (
    DEFAULT_TASK,
    TRAINING_FIELDS,
    Task,
    available_tasks,
    create_task,
    get_task,
    register_task,
    resolve_task,
)
from fedchain.tasks.builtin import DigitsMLP, MnistCNN, MnistWide, width_for_params
from tests.tasks.guide_task import DigitsCNN

GUIDE = "tests.tasks.guide_task:DigitsCNN"


def test_bundled_tasks_are_registered_and_digits_mlp_is_the_default():
    assert {"digits-mlp", "mnist-cnn", "mnist-wide"} <= set(available_tasks())
    assert DEFAULT_TASK == FedChainConfig().task == "digits-mlp"
    assert resolve_task("mnist-cnn") is MnistCNN
    assert isinstance(get_task("mnist-wide"), MnistWide)


def test_unknown_task_error_names_every_registered_task():
    with pytest.raises(ConfigError) as info:
        resolve_task("imagenet")
    message = str(info.value)
    assert message.startswith("The 'task' parameter must be one of ")
    for name in available_tasks():
        assert repr(name) in message
    assert message.endswith("or a dotted path. Got 'imagenet'.")


@pytest.mark.parametrize("path", [GUIDE, "tests.tasks.guide_task.DigitsCNN"])
def test_dotted_paths_name_a_task_class(path):
    assert resolve_task(path) is DigitsCNN
    assert create_task(path).input_shape == (1, 8, 8)


@pytest.mark.parametrize(
    "path", ["tests.tasks.guide_task:Missing", "no_such_module:Task", "fedchain.config:FedChainConfig"]
)
def test_bad_dotted_paths_are_refused(path):
    with pytest.raises(ConfigError, match="'task' parameter"):
        resolve_task(path)


def test_register_refuses_a_taken_name_and_a_non_task():
    class Impostor(DigitsCNN):
        name = "mnist-cnn"

    with pytest.raises(ConfigError, match="mnist-cnn"):
        register_task(Impostor)
    with pytest.raises(ConfigError, match="a Task subclass"):
        register_task(int)  # type: ignore[type-var]


def test_a_registered_custom_task_is_listed_and_usable():
    class Renamed(DigitsCNN):
        name = "digits-cnn-test"

    try:
        register_task(Renamed)
        assert available_tasks()["digits-cnn-test"] is Renamed
        assert FedChainConfig(task="digits-cnn-test").local_epochs == DigitsCNN.defaults.local_epochs
    finally:
        from fedchain.tasks.registry import _REGISTRY

        _REGISTRY.pop("digits-cnn-test")


def test_auto_hyperparameters_are_the_tasks_defaults_and_follow_the_task():
    config = FedChainConfig()
    for name in TRAINING_FIELDS:
        assert getattr(config, name) == getattr(DigitsMLP.defaults, name)
        assert config.to_run_config()[name.replace("_", "-")] == "auto"
    cnn = config.replace(task="mnist-cnn")
    for name in TRAINING_FIELDS:
        assert getattr(cnn, name) == getattr(MnistCNN.defaults, name)
    assert FedChainConfig.from_run_config(cnn.to_run_config()) == cnn


def test_an_explicit_hyperparameter_wins_over_the_tasks_default():
    config = FedChainConfig(task="mnist-cnn", local_epochs=7, dp_learning_rate=0.1)
    assert (config.local_epochs, config.dp_learning_rate) == (7, 0.1)
    assert config.replace(task="digits-mlp").local_epochs == 7
    assert config.to_run_config()["local-epochs"] == 7
    assert FedChainConfig.from_run_config({"task": "mnist-cnn", "local-epochs": "auto"}).local_epochs == 2


def test_a_fixed_class_task_refuses_another_number_of_classes():
    with pytest.raises(ConfigError, match="num_classes"):
        create_task(config=FedChainConfig(task="mnist-cnn", num_classes=5))


def test_wide_model_width_sets_the_parameter_count():
    for target in (1_000_000, 10_000_000):
        width = width_for_params(target)
        task = MnistWide(FedChainConfig(task="mnist-wide", model_width=width))
        from fedchain.tasks.models import wide_mlp_parameters

        assert wide_mlp_parameters(width) >= target > wide_mlp_parameters(width - 1)
    small = MnistWide(FedChainConfig(task="mnist-wide", model_width=8))
    assert small.parameter_count(small.build_model()) == 8 * 8 + 796 * 8 + 10
    assert (width_for_params(1_000_000), width_for_params(10_000_000)) == (679, 2790)
    assert isinstance(task, Task)


def test_the_config_resolves_task_defaults_without_loading_torch():
    code = (
        "import sys\n"
        "from fedchain.config import FedChainConfig\n"
        "config = FedChainConfig(task='mnist-cnn')\n"
        "from fedchain.tasks import create_task\n"
        "assert create_task(config=config).input_shape == (1, 28, 28)\n"
        "print(sorted(m for m in ('torch', 'opacus', 'mlxtend', 'pandas') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_the_guide_prints_the_tested_custom_task_verbatim():
    from tests.conftest import ROOT

    guide = (ROOT / "docs" / "tasks.md").read_text()
    module = (ROOT / "tests" / "tasks" / "guide_task.py").read_text()
    assert f"```python\n{module}```" in guide
