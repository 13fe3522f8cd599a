"""The ``--lambda``/``--alpha``/``--beta`` flags of Z, shared by ``plan`` and ``recommend``."""

from __future__ import annotations

import argparse
from fractions import Fraction

from ..cost.paper import Z_ALPHA, Z_BETA, Z_LAMBDA


def _shown(value: float) -> str:
    """``0.5`` -> ``1/2``, ``1/3`` -> ``1/3``, ``0.9`` -> ``0.9``: as the paper writes them."""
    fraction = Fraction(value).limit_denominator(12)
    if float(fraction) == value and fraction.numerator == 1:
        return str(fraction)
    return f"{value:g}"


def add_objective_arguments(parser: argparse.ArgumentParser, *, lambda_note: str = "") -> None:
    """Declare the weights of ``Z = lambda*M^alpha + (1-lambda)*C^beta`` (paper defaults)."""
    parser.add_argument(
        "--lambda",
        dest="lam",
        type=float,
        default=Z_LAMBDA,
        help=f"weight of memory in Z (default {_shown(Z_LAMBDA)}{lambda_note})",
    )
    parser.add_argument(
        "--alpha", type=float, default=Z_ALPHA, help=f"memory exponent (default {_shown(Z_ALPHA)})"
    )
    parser.add_argument(
        "--beta", type=float, default=Z_BETA, help=f"FLOPs exponent (default {_shown(Z_BETA)})"
    )
