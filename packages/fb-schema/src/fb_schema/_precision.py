"""Precision pairs (b_in, b_wt) and the partial order the free-bits heuristic moves along."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product

DEFAULT_BITS: tuple[int, ...] = (2, 4, 8)


@dataclass(frozen=True, order=True)
class Precision:
    """Input-activation and weight bits of one linear operator.

    ``b_wt`` is ``None`` for non-configurable layers (add, avgpool), which only have an input precision.

    Example:
        >>> Precision(4, 8).higher(Precision(4, 2))
        True
        >>> Precision(8, 2).higher(Precision(4, 4))
        False
    """

    b_in: int
    b_wt: int | None

    def higher(self, other: Precision) -> bool:
        """True iff ``self`` is at least as precise as ``other`` in both input and weight bits."""
        if (self.b_wt is None) != (other.b_wt is None):
            return False
        if self.b_wt is None or other.b_wt is None:  # both None here
            return self.b_in >= other.b_in
        return self.b_in >= other.b_in and self.b_wt >= other.b_wt

    @property
    def total_bits(self) -> int:
        return self.b_in + (self.b_wt or 0)

    def __str__(self) -> str:
        return f"{self.b_in}b/{'-' if self.b_wt is None else f'{self.b_wt}b'}"


def higher(a: Precision, b: Precision) -> bool:
    """``a.b_in >= b.b_in and a.b_wt >= b.b_wt`` (module-level form of :meth:`Precision.higher`)."""
    return a.higher(b)


def all_pairs(bits: tuple[int, ...] | list[int] = DEFAULT_BITS) -> list[Precision]:
    """Every (b_in, b_wt) pair over ``bits``, sorted.

    Example:
        >>> [str(p) for p in all_pairs((4, 8))]
        ['4b/4b', '4b/8b', '8b/4b', '8b/8b']
    """
    return [Precision(a, w) for a, w in product(sorted(bits), sorted(bits))]
