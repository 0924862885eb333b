"""FedProx's proximal term on members: plain training, and after Opacus's clipping and noise."""

import pytest
import torch
from opacus import PrivacyEngine
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from fedchain.aggregation.proximal import ProximalTerm
from fedchain.errors import ConfigError, StrategyError

LR, MU = 0.1, 0.5

pytestmark = [
    pytest.mark.filterwarnings("ignore:Secure RNG turned off"),
    pytest.mark.filterwarnings("ignore:Full backward hook is firing"),
]


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))


def _perturb(model: nn.Module) -> None:
    with torch.no_grad():
        for index, p in enumerate(model.parameters()):
            p.add_(0.1 * (index + 1))


def test_loss_gradient_is_mu_times_distance():
    model = _model()
    prox = ProximalTerm(model, mu=MU)
    reference = [p.detach().clone() for p in model.parameters()]
    _perturb(model)
    prox.loss().backward()
    from_loss = [p.grad.clone() for p in model.parameters()]
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    prox.add_to_gradients()
    for p, ref, grad in zip(model.parameters(), reference, from_loss, strict=True):
        assert torch.allclose(grad, MU * (p.detach() - ref))
        assert torch.allclose(p.grad, grad)


def test_zero_mu_changes_nothing_and_bad_mu_is_refused():
    model = _model()
    prox = ProximalTerm(model, mu=0.0)
    _perturb(model)
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    prox.add_to_gradients()
    assert all(torch.equal(p.grad, torch.ones_like(p)) for p in model.parameters())
    with pytest.raises(ConfigError, match=r"The 'proximal_mu' parameter must be a float in \[0, inf\). Got -0.1."):
        ProximalTerm(model, mu=-0.1)
    with pytest.raises(StrategyError, match="attaches to a torch optimizer"):
        ProximalTerm(model, mu=0.1).attach(object())


def test_attached_to_plain_sgd_it_is_fedprox_on_the_loss():
    """One SGD step with the hook equals one step on ``loss + mu/2 ||w - w_ref||^2`` (Flower's example form)."""
    x = torch.randn(8, 4, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([0, 1] * 4)
    ends = []
    for form in ("hook", "loss"):
        model = _model()
        prox = ProximalTerm(model, mu=MU)
        _perturb(model)
        optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9)
        if form == "hook":
            prox.attach(optimizer)
        for _ in range(3):
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model(x), y)
            (loss + prox.loss() if form == "loss" else loss).backward()
            optimizer.step()
        ends.append([p.detach().clone() for p in model.parameters()])
    for a, b in zip(*ends, strict=True):
        assert torch.allclose(a, b, atol=1e-6)
    assert not all(
        torch.allclose(a, b) for a, b in zip(ends[0], [p.detach() for p in _model().parameters()], strict=True)
    )


def _dp_step(*, proximal: str | None, noise_multiplier: float) -> tuple[list[torch.Tensor], list[torch.Tensor], object]:
    """One DP-SGD step from a model perturbed away from its reference; returns (start, end, accountant)."""
    model = _model()
    prox = ProximalTerm(model, mu=MU)  # the received global model is the reference
    _perturb(model)
    start = [p.detach().clone() for p in model.parameters()]
    x = torch.randn(8, 4, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([0, 1] * 4)
    engine = PrivacyEngine(accountant="rdp")
    sgd = torch.optim.SGD(model.parameters(), lr=LR)
    if proximal == "before make_private":
        prox.attach(sgd)
    dp_model, optimizer, loader = engine.make_private(
        module=model,
        optimizer=sgd,
        data_loader=DataLoader(TensorDataset(x, y), batch_size=8),
        noise_multiplier=noise_multiplier,
        max_grad_norm=0.05,  # small: the data gradient is clipped hard, the proximal term must not be
        poisson_sampling=False,
        noise_generator=torch.Generator().manual_seed(2),
    )
    if proximal == "on the DPOptimizer":
        prox.attach(optimizer)
    for xb, yb in loader:
        optimizer.zero_grad()
        nn.functional.cross_entropy(dp_model(xb), yb).backward()
        optimizer.step()
    return start, [p.detach().clone() for p in model.parameters()], engine.accountant


@pytest.mark.parametrize("where", ["before make_private", "on the DPOptimizer"])
@pytest.mark.parametrize("noise_multiplier", [0.0, 1.3])
def test_dp_term_is_added_after_clipping_and_noise_and_keeps_accounting(noise_multiplier, where):
    start, plain_end, plain_accountant = _dp_step(proximal=None, noise_multiplier=noise_multiplier)
    _, prox_end, prox_accountant = _dp_step(proximal=where, noise_multiplier=noise_multiplier)
    # Same clipped, noised gradient (same noise seed); the only difference is -lr * mu * (w - w_ref),
    # unclipped: clipping to 0.05 would have cut it to far less.
    reference = [p.detach().clone() for p in _model().parameters()]
    for a, b, w, ref in zip(plain_end, prox_end, start, reference, strict=True):
        assert torch.allclose(b - a, -LR * MU * (w - ref), atol=1e-6)
    difference = torch.cat([(b - a).flatten() for a, b in zip(plain_end, prox_end, strict=True)])
    assert float(difference.norm()) / LR > 0.05
    # The accountant still saw exactly one step with the same parameters: epsilon is unchanged.
    assert prox_accountant.history == plain_accountant.history == [(noise_multiplier, 1.0, 1)]


def test_attach_refuses_an_optimizer_over_other_parameters():
    model, other = _model(), _model()
    engine = PrivacyEngine()
    _, optimizer, _ = engine.make_private(
        module=other,
        optimizer=torch.optim.SGD(other.parameters(), lr=LR),
        data_loader=DataLoader(TensorDataset(torch.randn(4, 4), torch.tensor([0, 1, 0, 1])), batch_size=2),
        noise_multiplier=1.0,
        max_grad_norm=1.0,
    )
    with pytest.raises(StrategyError, match="does not cover"):
        ProximalTerm(model, mu=0.1).attach(optimizer)
    with pytest.raises(StrategyError, match="does not cover"):
        ProximalTerm(model, mu=0.1).attach(torch.optim.SGD(other.parameters(), lr=LR))
