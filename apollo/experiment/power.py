"""How many evaluation episodes an experiment needs to detect a difference in success rate,
and the smallest difference a given number detects: the normal approximation for two
proportions (two-sided test at level `alpha`, the given power), unpaired, and McNemar's for
paired episodes (the same instances in both arms), which needs the share of discordant pairs.
"""

from __future__ import annotations

import math
from statistics import NormalDist

_Z = NormalDist()


def _z(alpha: float, power: float) -> tuple[float, float]:
    if not (0 < alpha < 1 and 0 < power < 1):
        raise ValueError(f"alpha {alpha} and power {power} must both lie in (0, 1)")
    return _Z.inv_cdf(1 - alpha / 2), _Z.inv_cdf(power)


def n_unpaired(p1: float, p2: float, alpha: float = 0.05, power: float = 0.8) -> int:
    """Episodes per arm to tell success rates p1 and p2 apart with independent samples."""
    if not (0 <= p1 <= 1 and 0 <= p2 <= 1) or p1 == p2:
        raise ValueError(f"give two different success rates in [0, 1], not {p1} and {p2}")
    z_a, z_b = _z(alpha, power)
    mean = (p1 + p2) / 2
    spread = z_a * math.sqrt(2 * mean * (1 - mean)) + z_b * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))
    return math.ceil((spread / (p2 - p1)) ** 2)


def n_paired(discordant: float, diff: float, alpha: float = 0.05, power: float = 0.8) -> int:
    """Instances (pairs) to detect a difference `diff` in success rate when a share
    `discordant` of pairs differ in outcome (McNemar, Connor 1987); it cannot be below
    |diff|, since every pair that makes the difference is discordant."""
    if not 0 < abs(diff) <= discordant <= 1:
        raise ValueError(
            f"the discordant share ({discordant}) must be at least the difference ({diff}) "
            "and at most 1, and the difference not 0"
        )
    z_a, z_b = _z(alpha, power)
    spread = z_a * math.sqrt(discordant) + z_b * math.sqrt(discordant - diff**2)
    return math.ceil((spread / diff) ** 2)


def detectable_unpaired(n: int, base: float, alpha: float = 0.05, power: float = 0.8) -> float:
    """The smallest rise above the success rate `base` that `n` episodes per arm detect
    (1 - base when even that is out of reach)."""
    if n < 1 or not 0 <= base < 1:
        raise ValueError(f"give n >= 1 and a base rate in [0, 1), not n={n}, base={base}")
    low, high = 0.0, 1.0 - base
    if n_unpaired(base, base + high, alpha, power) > n:
        return high
    for _ in range(50):  # bisection to well below a percentage point
        mid = (low + high) / 2
        if mid > 0 and n_unpaired(base, base + mid, alpha, power) <= n:
            high = mid
        else:
            low = mid
    return high
