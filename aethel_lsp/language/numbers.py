"""Exact values of Aethel number literals and the SPEC's integer `/` and `%`.

SPEC: every value is an integer (z3 `Int`) and `/` is integer division.  Decimal
literals are kept as exact rationals (`0.05` is 1/20), never floats.  Python refuses to
convert decimal strings of more than 4,300 digits to `int` (a `ValueError` that used to
crash the checker), so literals longer than `MAX_LITERAL_DIGITS` get no value at all:
callers report them as out of range instead of converting them.
"""

from __future__ import annotations

from fractions import Fraction

__all__ = [
    "INT64_MAX",
    "INT64_MIN",
    "MAX_LITERAL_DIGITS",
    "abbreviate",
    "fraction_text",
    "integer_divide",
    "integer_remainder",
    "literal_value",
]

INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)
# Far beyond any meaningful amount (a signed 64-bit integer has 19 digits) and far below
# Python's int/str conversion limit, so every value derived from a literal prints safely.
MAX_LITERAL_DIGITS = 1000
_SHOWN_DIGITS = 24


def literal_value(text: str) -> Fraction | None:
    """The exact value of a NUMBER token (`-3`, `0.05`), None when it is too long.

    >>> literal_value("0.05"), literal_value("-3"), literal_value("9" * 1001)
    (Fraction(1, 20), Fraction(-3, 1), None)
    """
    digits = len(text) - text.startswith("-") - ("." in text)
    if digits > MAX_LITERAL_DIGITS:
        return None
    return Fraction(text)


def abbreviate(text: str) -> str:
    """A number's text short enough for a message: long ones keep their head and length.

    >>> abbreviate("12345")
    '12345'
    >>> abbreviate("7" * 5000)
    '777777777777777777777777… (5000 digits)'
    """
    digits = sum(ch.isdigit() for ch in text)
    if len(text) <= _SHOWN_DIGITS + 2:
        return text
    return f"{text[:_SHOWN_DIGITS]}… ({digits} digits)"


def fraction_text(value: Fraction) -> str:
    """`7`, `-0.05`, or `1/3` when the value has no finite decimal expansion.

    >>> fraction_text(Fraction(7)), fraction_text(Fraction(-1, 20)), fraction_text(Fraction(1, 3))
    ('7', '-0.05', '1/3')
    """
    if value.denominator == 1:
        return abbreviate(str(value.numerator))
    den = value.denominator
    twos = fives = 0
    while den % 2 == 0:
        den //= 2
        twos += 1
    while den % 5 == 0:
        den //= 5
        fives += 1
    if den != 1 or max(twos, fives) > _SHOWN_DIGITS:
        return abbreviate(f"{value.numerator}/{value.denominator}")
    places = max(twos, fives)
    scaled = abs(value.numerator) * 10**places // value.denominator
    whole, frac = divmod(scaled, 10**places)
    sign = "-" if value < 0 else ""
    return abbreviate(f"{sign}{whole}.{frac:0{places}d}")


def integer_divide(left: int, right: int) -> int:
    """`left / right` as the SPEC (z3 `div`) defines it: the remainder is never negative.

    >>> integer_divide(7, 2), integer_divide(-7, 2), integer_divide(7, -2), integer_divide(-7, -2)
    (3, -4, -3, 4)
    """
    return left // right if right > 0 else -(left // -right)


def integer_remainder(left: int, right: int) -> int:
    """`left % right` as z3 `mod` defines it: in `[0, |right|)` whatever the signs.

    >>> integer_remainder(7, 2), integer_remainder(-7, 2), integer_remainder(7, -2)
    (1, 1, 1)
    """
    return left - right * integer_divide(left, right)
