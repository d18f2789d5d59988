"""The checks every option of the library goes through: numbers, flags, timeouts.

Written once so that every `ConfigurationError` for a bad number reads the same way.
"""

from __future__ import annotations

import math
from typing import Any

from ._exceptions import ConfigurationError

__all__ = ["check_flag", "check_number", "check_timeout"]


def check_number(
    name: str, value: Any, *, minimum: float, maximum: float | None = None,
    integer: bool = False, inclusive: bool = True, infinite: bool = False,
) -> None:
    """Raise `ConfigurationError` unless `value` is a number within the bounds.

    `inclusive`: `minimum` itself is allowed. `infinite`: `math.inf` is allowed.
    """
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or (integer and not isinstance(value, int))
        or math.isnan(value)
        or (math.isinf(value) and not (infinite and value > 0))
    ):
        expected = "an integer" if integer else "a number"
        raise ConfigurationError(f"{name} must be {expected}, got {value!r}")
    number = float(value)
    too_small = number < minimum if inclusive else number <= minimum
    if too_small or (maximum is not None and number > maximum):
        bound = f">= {minimum}" if inclusive else f"> {minimum}"
        if maximum is not None:
            bound += f" and <= {maximum}"
        raise ConfigurationError(f"{name} must be {bound}, got {value!r}")


def check_flag(name: str, value: Any) -> None:
    """Raise `ConfigurationError` unless `value` is True or False."""
    if not isinstance(value, bool):
        raise ConfigurationError(f"{name} must be True or False, got {value!r}")


def check_timeout(name: str, value: Any) -> None:
    """A timeout in seconds: a number >= 0, or `math.inf` for no bound."""
    check_number(name, value, minimum=0, infinite=True)
