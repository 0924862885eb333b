"""The strategies guide's examples are real: each code block runs and passes the conformance suite."""

import re
import sys
import types
from pathlib import Path

import pytest

from fedchain.config import FedChainConfig
from fedchain.errors import StrategyError
from strategies import registry
from strategies.conformance import check_strategy
from strategies.registry import create_strategy, resolve_strategy

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "strategies.md"
BLOCK = re.compile(r"<!-- tested: (\w+) -->\n```python\n(.*?)```", re.S)


def _examples() -> dict[str, str]:
    return dict(BLOCK.findall(GUIDE.read_text()))


@pytest.fixture
def guide_module(request):
    """Execute one example as an importable module; unregister it afterwards."""
    name = request.param
    module_name = f"docs_strategies_{name}"
    module = types.ModuleType(module_name)
    sys.modules[module_name] = module
    try:
        exec(compile(_examples()[name], f"{GUIDE}:{name}", "exec"), module.__dict__)
        yield name, module
    finally:
        sys.modules.pop(module_name, None)
        registry._REGISTRY.pop(name, None)


def test_the_guide_has_both_examples_and_they_are_short():
    examples = _examples()
    assert set(examples) == {"slow_avgm", "two_krum"}
    for name, code in examples.items():
        assert len(code.strip().splitlines()) < 40, name


@pytest.mark.parametrize("guide_module", ["slow_avgm", "two_krum"], indirect=True)
def test_guide_example_registers_and_conforms(guide_module):
    name, module = guide_module
    cls = resolve_strategy(name)
    assert cls.__module__ == module.__name__
    assert resolve_strategy(f"{module.__name__}:{cls.__name__}") is cls  # the dotted-path form works too
    check_strategy(cls)


@pytest.mark.parametrize("guide_module", ["slow_avgm"], indirect=True)
def test_slow_avgm_runs_under_he_with_its_option(guide_module):
    config = FedChainConfig(strategy="slow_avgm", he=True)
    strategy = create_strategy(config)
    assert strategy.server_optimizer(config).options() == {"server_learning_rate": 1.0, "server_momentum": 0.5}
    assert strategy.inner.server_momentum == 0.5


@pytest.mark.parametrize("guide_module", ["two_krum"], indirect=True)
def test_two_krum_is_refused_under_he(guide_module):
    with pytest.raises(StrategyError, match="needs plaintext updates, but HE is on"):
        create_strategy(FedChainConfig(strategy="two_krum", he=True))
