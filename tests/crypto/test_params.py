from __future__ import annotations

import pytest

from fedchain.crypto import AGGREGATION, MAX_COEFF_MODULUS_BITS_128, SCORING, CkksParams
from fedchain.errors import ConfigError


@pytest.mark.parametrize("params", [AGGREGATION, SCORING], ids=["aggregation", "scoring"])
def test_presets_meet_128_bit_security(params: CkksParams) -> None:
    bound = MAX_COEFF_MODULUS_BITS_128[params.poly_modulus_degree]
    assert params.total_coeff_modulus_bits <= bound
    assert params.slot_count == 4096


def test_preset_ranges_cover_weighted_updates() -> None:
    # sums of n * delta up to ~1e7 per slot; packed inner products up to ~1e14
    assert AGGREGATION.max_magnitude == 2.0**24
    assert SCORING.max_magnitude == 2.0**48
    assert not AGGREGATION.galois_keys and SCORING.galois_keys


def test_modulus_over_the_security_bound_is_refused() -> None:
    with pytest.raises(ConfigError) as info:
        CkksParams(poly_modulus_degree=8192, coeff_mod_bit_sizes=(60, 40, 40, 40, 60), global_scale_bits=40)
    assert str(info.value) == (
        "The 'coeff_mod_bit_sizes' parameter must be at most 218 bits in total for 128-bit security at "
        "N=8192. Got (60, 40, 40, 40, 60). They sum to 240 bits."
    )


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({"poly_modulus_degree": 5000}, "poly_modulus_degree"),
        ({"coeff_mod_bit_sizes": (60,)}, "coeff_mod_bit_sizes"),
        ({"coeff_mod_bit_sizes": [60, 40]}, "coeff_mod_bit_sizes"),
        ({"coeff_mod_bit_sizes": (61, 40)}, "coeff_mod_bit_sizes"),
        ({"global_scale_bits": 60}, "global_scale_bits"),
        ({"global_scale_bits": 10}, "global_scale_bits"),
        ({"multiplications": 1}, "multiplications"),
    ],
)
def test_invalid_fields_name_the_parameter(kwargs: dict[str, object], parameter: str) -> None:
    base: dict[str, object] = {
        "poly_modulus_degree": 8192,
        "coeff_mod_bit_sizes": (60, 40),
        "global_scale_bits": 40,
    }
    with pytest.raises(ConfigError) as info:
        CkksParams(**(base | kwargs))  # type: ignore[arg-type]
    assert info.value.parameter == parameter
    assert str(info.value).startswith(f"The {parameter!r} parameter must be")
