"""Where DP-SGD's randomness comes from: Poisson sampling and Gaussian noise.

DP holds only while nobody can predict the noise. A generator seeded from a value someone else
knows (the run seed, printed in ``result.json``) turns the noise into a key: replaying it
subtracts the noise from the update and leaves the clipped gradients bare. So a member's noise
and sampling come from :class:`SecureRandomness`, a ChaCha20 keystream (the construction of
Linux's own ``/dev/urandom``) keyed with 256 bits from the operating system's CSPRNG
(``os.urandom``) for every round, never stored. Each Gaussian value is the sum of four Box-Muller
samples over 53-bit uniforms, divided by 2, which is what Opacus's ``secure_mode`` does to defeat
floating-point attacks on the Gaussian sampler (Opacus's ``_generate_noise``; its own secure mode
needs torchcsprng, which is not installable here).

:class:`SeededRandomness` reproduces a round from a seed: it is for tests and simulations that
must be replayable, and it is the behaviour the Opacus-equivalence tests pin (the same
``torch.Generator`` draws as Opacus's own loader and optimizer). It is never chosen by default:
a member uses it only when its own node is a simulation and the simulation asked for a fixed noise
seed (``dp-noise-seed``), and the member records that its noise was seeded.

Example:
    >>> import torch
    >>> secure = SecureRandomness()
    >>> secure.secure, secure.normal((3,), std=1.0, dtype=torch.float32).shape
    (True, torch.Size([3]))
    >>> a, b = SeededRandomness(7), SeededRandomness(7)
    >>> torch.equal(a.normal((4,), std=2.0, dtype=torch.float32), b.normal((4,), std=2.0, dtype=torch.float32))
    True
"""

from __future__ import annotations

import math
import os
from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np
import torch
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

from fedchain._validation import Interval

__all__ = ["PrivacyRandomness", "SecureRandomness", "SeededRandomness"]

#: Box-Muller samples summed per Gaussian value (Opacus secure_mode's 2n with n = 2).
_SAMPLES_PER_VALUE = 4
#: Keystream bytes drawn per call at most (bounds memory for very large tensors).
_MAX_CHUNK_BYTES = 1 << 26
#: Keeps 53 of a keystream word's 64 bits: a float64 in [0, 1) has 53 bits of mantissa.
_LOW_53_BITS = (1 << 53) - 1
#: ChaCha20's block in bytes: ``update_into`` needs that much room beyond its input.
_CHACHA_BLOCK_BYTES = 64
#: The block counter at the head of the ``cryptography`` ChaCha20 nonce (32 bits, little-endian).
_COUNTER_BYTES = 4


class PrivacyRandomness(ABC):
    """The randomness of one member's DP-SGD round: Poisson masks and Gaussian noise.

    Subclasses implement :meth:`uniform` and :meth:`normal`; ``secure`` says whether anyone
    else could reproduce the draws.

    Example:
        >>> SecureRandomness().poisson_masks(2, 5, 1.0).tolist()
        [[True, True, True, True, True], [True, True, True, True, True]]
    """

    #: True when the draws cannot be predicted by anyone (a CSPRNG with a fresh secret key).
    secure: bool = False

    @abstractmethod
    def uniform(self, shape: Sequence[int]) -> torch.Tensor:
        """Independent uniform values in ``[0, 1)`` (float64 for the secure source), of ``shape``."""

    @abstractmethod
    def normal(self, shape: Sequence[int], *, std: float, dtype: torch.dtype) -> torch.Tensor:
        """Independent ``N(0, std**2)`` values of ``shape`` and ``dtype`` (on the CPU)."""

    def poisson_masks(self, steps: int, num_examples: int, sample_rate: float) -> torch.Tensor:
        """``steps`` Poisson sampling masks: each example is in each batch with probability ``sample_rate``."""
        return self.uniform((steps, num_examples)) < sample_rate


class SecureRandomness(PrivacyRandomness):
    """Unpredictable draws: a ChaCha20 keystream keyed from ``os.urandom`` (see the module docstring).

    Each instance has its own fresh 256-bit key and 96-bit nonce, which never leave the object, and
    draws up to 256 GiB of keystream (ChaCha20's 32-bit block counter starts at 0).

    Example:
        >>> u = SecureRandomness().uniform((1000,))
        >>> bool(0.0 <= u.min() and u.max() < 1.0)
        True
    """

    secure = True

    def __init__(self) -> None:
        # The 16-byte "nonce" is ChaCha20's 32-bit block counter (little-endian) then a 96-bit nonce: the
        # counter starts at 0 so one instance draws up to 2**32 blocks (256 GiB); a random start could
        # overflow after a few bytes (1M parameters x 32 steps draw 1 GiB a round).
        nonce = bytes(_COUNTER_BYTES) + os.urandom(16 - _COUNTER_BYTES)
        self._stream = Cipher(algorithms.ChaCha20(os.urandom(32), nonce), mode=None).encryptor()
        self._zeros = b""
        self._keystream = bytearray()

    def __repr__(self) -> str:
        return "SecureRandomness()"

    def _unit(self, count: int) -> torch.Tensor:
        """``count`` uniforms in ``[0, 1)`` with 53 random bits each (float64), from the keystream."""
        out = torch.empty(count, dtype=torch.float64)
        per_chunk = min(count, _MAX_CHUNK_BYTES // 8)
        if len(self._zeros) < 8 * per_chunk:  # buffers kept for the next draw: no page faults each time
            self._zeros = bytes(8 * per_chunk)
            self._keystream = bytearray(8 * per_chunk + _CHACHA_BLOCK_BYTES)  # update_into wants room
        zeros = memoryview(self._zeros)
        for start in range(0, count, per_chunk):
            n = min(per_chunk, count - start)
            self._stream.update_into(zeros[: 8 * n], self._keystream)
            words = torch.frombuffer(self._keystream, dtype=torch.int64, count=n)
            out[start : start + n] = (words & _LOW_53_BITS).to(torch.float64)
        return out.mul_(1.0 / (1 << 53))

    def uniform(self, shape: Sequence[int]) -> torch.Tensor:
        """Uniforms in ``[0, 1)`` with 53 random bits each, from the keystream."""
        return self._unit(math.prod(shape)).reshape(tuple(shape))

    def _standard_normal(self, count: int) -> torch.Tensor:
        """``count`` standard normal values, Box-Muller on 53-bit uniforms (``1 - u`` in ``(0, 1]``)."""
        pairs = (count + 1) // 2
        u = self._unit(2 * pairs)
        radius = torch.log1p(-u[:pairs]).mul_(-2.0).sqrt_()
        angle = u[pairs:].mul_(2.0 * math.pi)
        return torch.cat([radius * torch.cos(angle), radius * torch.sin(angle)])[:count]

    def normal(self, shape: Sequence[int], *, std: float, dtype: torch.dtype) -> torch.Tensor:
        """Gaussian values, each the scaled sum of four Box-Muller samples (Opacus secure_mode)."""
        count = math.prod(shape)
        if std == 0 or count == 0:
            return torch.zeros(tuple(shape), dtype=dtype)
        draws = self._standard_normal(_SAMPLES_PER_VALUE * count).reshape(_SAMPLES_PER_VALUE, count)
        values = draws.sum(dim=0).mul_(std / math.sqrt(_SAMPLES_PER_VALUE))
        return values.reshape(tuple(shape)).to(dtype)


class SeededRandomness(PrivacyRandomness):
    """Reproducible draws from ``seed`` (testing and replayable simulations only; see the module docstring).

    ``sampling`` and ``noise`` are the two ``torch.Generator`` objects Opacus would be handed:
    the Opacus path passes them to Opacus itself, so a seed gives Opacus's very draws.

    Example:
        >>> SeededRandomness(1).uniform((3,)).equal(SeededRandomness(1).uniform((3,)))
        True
    """

    secure = False

    def __init__(self, seed: int) -> None:
        seed = Interval(int, 0, None, closed="left").check("seed", seed)
        sampling_seed, noise_seed, global_seed = np.random.SeedSequence(seed).generate_state(3)
        self.seed = seed
        #: Seeds torch's global RNG for the round (dropout), as the sampling and noise seeds are derived.
        self.global_seed = int(global_seed)
        self.sampling = torch.Generator().manual_seed(int(sampling_seed))
        self.noise = torch.Generator().manual_seed(int(noise_seed))

    def __repr__(self) -> str:
        return f"SeededRandomness({self.seed})"

    def uniform(self, shape: Sequence[int]) -> torch.Tensor:
        """``torch.rand`` from the sampling generator (Opacus's Poisson draws)."""
        return torch.rand(tuple(shape), generator=self.sampling)

    def normal(self, shape: Sequence[int], *, std: float, dtype: torch.dtype) -> torch.Tensor:
        """``torch.normal`` from the noise generator (Opacus's noise draws)."""
        return torch.normal(0.0, std, tuple(shape), generator=self.noise, dtype=dtype)
