"""Numbers as a reader sees them: rounded to what their confidence interval supports, never 16 digits.

The rule: three significant digits, and no digit finer than the second significant digit of the CI's half-width
(a digit below that is noise of the image sample). So S_dir 0.1452 [0.0093, 0.2767] reads `0.15 [0.01, 0.28]`,
SC 0.94638 [0.93261, 0.96027] reads `0.946 [0.933, 0.960]`, and a value without a CI (N = 1, or a band's end)
reads with three significant digits. Integer digits are never rounded away (FID 1234.5 reads `1234`), and tiny
values keep three significant digits in exponent form (`1e-06`).
"""

from __future__ import annotations

import math

SIGNIFICANT = 3
CI_SIGNIFICANT = 2
MISSING = "—"
_EXPONENT_BELOW = 1e-3  # |x| below this (and not 0) is written as 1.23e-04


def _is_number(x: float | None) -> bool:
    return x is not None and isinstance(x, int | float) and math.isfinite(x)


def _first_digit_place(x: float) -> int:
    """The decimal exponent of x's first significant digit (0.0123 -> -2, 93.6 -> 1)."""
    return math.floor(math.log10(abs(x)))


def decimals_for(value: float, half_width: float | None = None) -> int:
    """How many decimals to show `value` with: three significant digits, fewer when the CI half-width says the
    later ones are noise; never negative (integer digits stay)."""
    if not _is_number(value) or value == 0:
        wanted = SIGNIFICANT - 1
    else:
        wanted = SIGNIFICANT - 1 - _first_digit_place(value)
    if _is_number(half_width) and half_width > 0:
        wanted = min(wanted, CI_SIGNIFICANT - 1 - _first_digit_place(half_width))
    return max(0, wanted)


def _fixed(x: float, decimals: int) -> str:
    text = f"{x:.{decimals}f}"
    return text.lstrip("-") if float(text) == 0 else text  # never "-0.00"


def _tiny(x: float) -> bool:
    return x != 0 and abs(x) < _EXPONENT_BELOW


def format_number(x: float | None, half_width: float | None = None) -> str:
    """One number (see the module docstring); `—` for a missing one, `0` for an exact zero without a CI."""
    if not _is_number(x):
        return MISSING
    if x == 0 and not (_is_number(half_width) and half_width > 0):
        return "0"
    if _tiny(x) and not (_is_number(half_width) and half_width >= _EXPONENT_BELOW):
        return f"{x:.{SIGNIFICANT}g}"
    return _fixed(x, decimals_for(x, half_width))


def half_width(ci_low: float | None, ci_high: float | None) -> float | None:
    if not (_is_number(ci_low) and _is_number(ci_high)):
        return None
    return (ci_high - ci_low) / 2


def format_with_ci(mean: float | None, ci_low: float | None, ci_high: float | None) -> str:
    """`mean [low, high]`, all three to the same decimals (those the CI supports); the mean alone without a CI."""
    if not _is_number(mean):
        return MISSING
    half = half_width(ci_low, ci_high)
    if half is None:
        return format_number(mean)
    if _tiny(mean) and max(abs(ci_low), abs(ci_high)) < _EXPONENT_BELOW:
        return f"{mean:.{SIGNIFICANT}g} [{ci_low:.{SIGNIFICANT}g}, {ci_high:.{SIGNIFICANT}g}]"
    decimals = decimals_for(mean, half)
    return f"{_fixed(mean, decimals)} [{_fixed(ci_low, decimals)}, {_fixed(ci_high, decimals)}]"
