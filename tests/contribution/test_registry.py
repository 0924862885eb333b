from __future__ import annotations

import pytest

from fedchain.contribution import (
    ContributionScorer,
    ScoringInputs,
    available_scorers,
    check_scorer_allowed,
    create_scorer,
    register_scorer,
)
from fedchain.contribution import registry as registry_module
from fedchain.errors import ConfigError


def test_builtin_scorers_are_registered_with_their_needs() -> None:
    scorers = available_scorers()
    assert list(scorers) == ["cosine", "data_size", "gtg_shapley", "loo"]
    assert [s.needs_plaintext for s in scorers.values()] == [False, False, True, True]
    assert [s.needs_validation for s in scorers.values()] == [False, False, True, True]
    assert scorers["cosine"].needs_scalars


def test_unknown_scorer_lists_the_registered_names_from_the_registry() -> None:
    with pytest.raises(ConfigError) as info:
        create_scorer("krum_score")
    assert str(info.value) == (
        "The 'scorer' parameter must be one of 'cosine', 'data_size', 'gtg_shapley', 'loo'. Got 'krum_score'."
    )


def test_duplicate_names_are_refused_and_new_ones_listed() -> None:
    with pytest.raises(ConfigError, match=r"must be a scorer name not registered yet\. Got 'cosine'"):

        @register_scorer
        class Impostor(ContributionScorer):
            name = "cosine"

            def score(self, inputs: ScoringInputs) -> dict[str, float]:
                return {}

    @register_scorer
    class Flat(ContributionScorer):
        name = "flat_test_only"

        def score(self, inputs: ScoringInputs) -> dict[str, float]:
            return dict.fromkeys(inputs.members, 1.0)

    try:
        assert register_scorer(Flat) is Flat  # registering the same class again is harmless
        assert create_scorer("flat_test_only")(ScoringInputs(num_examples={"a": 2})) == {"a": 1.0}
        with pytest.raises(ConfigError, match="'flat_test_only'"):
            create_scorer("nope")
    finally:
        del registry_module._REGISTRY["flat_test_only"]


def test_plaintext_scorers_are_refused_under_he_with_a_clear_message() -> None:
    for name in ("loo", "gtg_shapley"):
        with pytest.raises(ConfigError) as info:
            check_scorer_allowed(name, he=True)
        message = str(info.value)
        assert message.startswith(
            f"The 'scorer' parameter must be one of 'cosine', 'data_size' when HE is on. Got '{name}'."
        )
        assert "needs individual plaintext updates and a validation set" in message
        assert "--no-he" in message
        assert check_scorer_allowed(name, he=False).name == name


def test_cosine_under_he_needs_the_scoring_parameters() -> None:
    assert check_scorer_allowed("cosine", he=True, he_scoring=True).name == "cosine"
    assert check_scorer_allowed("data_size", he=True, he_scoring=False).name == "data_size"
    with pytest.raises(ConfigError, match="The 'he_scoring' parameter must be true for scorer 'cosine' under HE"):
        check_scorer_allowed("cosine", he=True, he_scoring=False)


def test_describe_reports_needs() -> None:
    assert create_scorer("loo").describe() == {
        "name": "loo",
        "he": False,
        "needs_plaintext": True,
        "needs_scalars": False,
        "needs_validation": True,
        "summary": "validation accuracy lost without the member (plaintext only)",
    }


def test_public_surface_is_sorted_and_complete() -> None:
    import fedchain.contribution as contribution

    assert contribution.__all__ == sorted(contribution.__all__)
    assert all(hasattr(contribution, name) for name in contribution.__all__)
