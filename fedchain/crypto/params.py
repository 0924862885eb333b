"""CKKS parameter sets and their validation.

Two presets cover what fedchain does under homomorphic encryption. Both use ring dimension
``N = 8192`` (4096 slots per ciphertext) and meet 128-bit classical security: the
HomomorphicEncryption.org security standard (Albrecht et al., 2018, Table 1, uniform ternary secret)
bounds the total coefficient modulus ``log2(Q)`` (special prime included) by 27, 54, 109, 218, 438 and
881 bits for ``N`` = 1024 ... 32768. SEAL enforces the same table (``CoeffModulus::MaxBitCount``).

``AGGREGATION`` (addition only)
    ``N = 8192``, coefficient moduli ``[56, 40]`` bits (96 of the 218 allowed; 40 is the special prime,
    kept so that fresh noise is scaled down on encryption), scale ``2**30``. A ciphertext carries the
    one 56-bit data prime. Members upload *seeded* ciphertexts (:mod:`fedchain.crypto._seeded`: the
    second polynomial is replaced by its seed): a packed chunk of 4096 values serializes to 62,093
    bytes, **3.79 ciphertext bytes per float32 byte** (3.80 at 1M values once the last chunk's
    padding counts; TenSEAL's own serialization took 123,950 bytes, 7.57x). The sum the coordinator
    returns is an ordinary ciphertext, about 124 KB per chunk.
    A value decodes while ``|x| * 2**30 < 2**55``: every slot, including the sum over all members,
    must stay below ``max_magnitude = 2**24 ~ 1.7e7`` (one bit of margin). Precision, measured on
    100k values of standard deviation 0.5 to 1e4 (the error does not grow with the values): at most
    ``1e-6`` absolute error per value on a fresh ciphertext, ``3e-6`` on a sum of 10. Documented and
    tested bound: ``1e-5`` per value and per member added, so a FedAvg of ``k`` members with total
    weight ``W`` (members encrypt ``n_i * delta_i``) is within ``1e-5 * k / W`` of plaintext FedAvg.

``SCORING`` (one ciphertext x ciphertext product, then one plaintext product to pack scalars)
    ``N = 8192``, coefficient moduli ``[50, 36, 36, 36, 60]`` bits (218 of 218; 60 is the special prime,
    as large as the largest data prime so that key switching adds little noise), scale ``2**36``.
    Fresh ciphertexts carry the four data primes (158 bits): about 390 KB per chunk in full, 199 KB
    as the seeded uploads members send (4096 values: 12x the float32 bytes); the product
    drops one 36-bit prime and packing drops another, leaving ``50 + 36`` bits, so a packed scalar
    must stay below ``max_magnitude = 2**48 ~ 2.8e14``. The sum members decrypt needs no more than
    that either, so the coordinator switches it down to those two primes once the committee's
    products are done (:func:`fedchain.crypto.compact_sum`: 213 KB per chunk instead of 393 KB,
    half the decryption time). Inner products of 100k values have a relative
    error near ``4e-6`` (``2e-5`` once packed) and an absolute floor near ``1e-5``; see
    :mod:`fedchain.crypto.scoring`. The public context carries relinearization and Galois keys (53 MB).
    The textbook ``[60, 40, 40, 60]`` at ``2**40`` keeps only the 60-bit prime after packing, so
    packed values above ``2**19 ~ 5e5`` wrap around: too small for the inner products of weighted
    updates (up to ~1e14).

The upload ratio (ciphertext bytes / float32 bytes) is bounded below by about ``log2(q0) / 16`` for a
single data prime ``q0`` with seeded uploads (``N`` coefficients of one polynomial hold ``N / 2``
values; ``log2(q0) / 8`` for unseeded ones). Measured per full chunk at N = 8192 (``q0`` bits, scale
bits: unseeded ratio, max error, max magnitude): ``60, 40``: 8.01x, 9e-9, 2.6e5 (STACK.md's set;
4.01x seeded at ``60, 34``) -- ``60, 34``: 8.01x, 6e-7, 1.7e7 -- ``58, 32``: 7.77x, 2e-6, 1.7e7 --
``56, 30``: 7.57x, 9e-6, 1.7e7 (chosen; 3.79x seeded, the issue's target being 4x). N = 4096 gives
the same ratio for the same ``q0`` (half the slots, half the coefficients).

Example:
    >>> from fedchain.crypto.params import AGGREGATION, CkksParams
    >>> AGGREGATION.slot_count
    4096
    >>> CkksParams(poly_modulus_degree=4096, coeff_mod_bit_sizes=(60, 60), global_scale_bits=40)
    Traceback (most recent call last):
    ...
    fedchain.errors.ConfigError: The 'coeff_mod_bit_sizes' parameter must be ...
"""

from __future__ import annotations

from dataclasses import dataclass

from fedchain.errors import ConfigError

__all__ = ["AGGREGATION", "MAX_COEFF_MODULUS_BITS_128", "SCORING", "CkksParams"]

#: Largest total coefficient modulus (bits) for 128-bit classical security, per ring dimension, from
#: the HomomorphicEncryption.org standard (Table 1, ternary secret); SEAL enforces the same values.
MAX_COEFF_MODULUS_BITS_128: dict[int, int] = {
    1024: 27,
    2048: 54,
    4096: 109,
    8192: 218,
    16384: 438,
    32768: 881,
}

_MAX_PRIME_BITS = 60
_MIN_PRIME_BITS = 20


@dataclass(frozen=True)
class CkksParams:
    """The parameters of one CKKS context.

    Attributes:
        poly_modulus_degree: ring dimension ``N``, a power of two from 1024 to 32768.
        coeff_mod_bit_sizes: bit sizes of the coefficient primes, the last one being the special prime.
        global_scale_bits: ``log2`` of the encoding scale; every rescaled prime should be this size.
        multiplications: ciphertext levels the set is designed to consume (0: addition only).
        galois_keys: whether the public context carries Galois (rotation) and relinearization keys.

    Raises:
        ConfigError: when a field is out of range or the modulus exceeds the 128-bit bound.

    Example:
        >>> p = CkksParams(poly_modulus_degree=8192, coeff_mod_bit_sizes=(60, 40), global_scale_bits=40)
        >>> p.total_coeff_modulus_bits, p.slot_count
        (100, 4096)
    """

    poly_modulus_degree: int
    coeff_mod_bit_sizes: tuple[int, ...]
    global_scale_bits: int
    multiplications: int = 0
    galois_keys: bool = False

    def __post_init__(self) -> None:
        if self.poly_modulus_degree not in MAX_COEFF_MODULUS_BITS_128:
            raise ConfigError(
                "poly_modulus_degree", f"one of {sorted(MAX_COEFF_MODULUS_BITS_128)}", self.poly_modulus_degree
            )
        sizes = self.coeff_mod_bit_sizes
        if not isinstance(sizes, tuple) or len(sizes) < 2:
            raise ConfigError(
                "coeff_mod_bit_sizes", "a tuple of at least 2 prime bit sizes (data primes + special)", sizes
            )
        if any(
            isinstance(b, bool) or not isinstance(b, int) or not _MIN_PRIME_BITS <= b <= _MAX_PRIME_BITS for b in sizes
        ):
            raise ConfigError("coeff_mod_bit_sizes", f"ints in [{_MIN_PRIME_BITS}, {_MAX_PRIME_BITS}]", sizes)
        bound = MAX_COEFF_MODULUS_BITS_128[self.poly_modulus_degree]
        if sum(sizes) > bound:
            raise ConfigError(
                "coeff_mod_bit_sizes",
                f"at most {bound} bits in total for 128-bit security at N={self.poly_modulus_degree}",
                sizes,
                hint=f"They sum to {sum(sizes)} bits.",
            )
        if not 20 <= self.global_scale_bits < sizes[0]:
            raise ConfigError(
                "global_scale_bits", f"an int in [20, {sizes[0]}) (below the first prime)", self.global_scale_bits
            )
        if not 0 <= self.multiplications <= len(sizes) - 2:
            raise ConfigError(
                "multiplications",
                f"an int in [0, {len(sizes) - 2}] (one rescale prime each)",
                self.multiplications,
            )

    @property
    def slot_count(self) -> int:
        """Values packed in one ciphertext (``N / 2``)."""
        return self.poly_modulus_degree // 2

    @property
    def total_coeff_modulus_bits(self) -> int:
        """Total coefficient modulus in bits, special prime included."""
        return sum(self.coeff_mod_bit_sizes)

    @property
    def max_magnitude(self) -> float:
        """Largest magnitude a slot may hold once every multiplication has been done.

        After ``multiplications`` rescales the ciphertext keeps the first
        ``len(coeff_mod_bit_sizes) - 1 - multiplications`` primes; a value ``x`` decodes correctly while
        ``|x| * 2**global_scale_bits`` stays below half their product. One bit of margin is kept.
        """
        kept = self.coeff_mod_bit_sizes[: len(self.coeff_mod_bit_sizes) - 1 - self.multiplications]
        return float(2 ** (sum(kept) - self.global_scale_bits - 2))


#: Addition-only parameters for weighted sums of member updates.
AGGREGATION = CkksParams(poly_modulus_degree=8192, coeff_mod_bit_sizes=(56, 40), global_scale_bits=30)

#: Parameters for encrypted inner products (one ciphertext product) packed into one ciphertext (one
#: plaintext product); the public context carries relinearization and Galois keys.
SCORING = CkksParams(
    poly_modulus_degree=8192,
    coeff_mod_bit_sizes=(50, 36, 36, 36, 60),
    global_scale_bits=36,
    multiplications=2,
    galois_keys=True,
)
