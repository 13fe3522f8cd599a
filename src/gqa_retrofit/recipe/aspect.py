"""Model shape (L, d) for a parameter budget: the paper's aspect-ratio table (Tables 7 and 9)
and the search of Appendix B.1.

Given the size N* a head configuration needs, the paper picks the depth L and width d from a
fixed table of aspect ratios: the ratio d/L is interpolated from the table at N* and L is found
by binary search so that the model with that shape and head configuration has N* non-embedding
parameters. The architecture is the paper's: SwiGLU FFN with ``d_ff = 8d/3`` rounded up to a
multiple of 32, head size ``d_h = 64``, RMSNorm (2 per layer + 1 final).

Widths are rounded to a multiple of 64 (at least 64), so the parameter count grows
monotonically with L and the binary search is exact.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Literal

from ..arch.geometry import Geometry
from ..errors import ConfigError

#: How a size N* becomes a shape: ``"interpolate"`` (Appendix B.1: interpolated d/L, binary
#: search for L) or ``"table"`` (the nearest row of the paper's table, i.e. the paper's own
#: trained shapes with their nominal sizes).
Sizing = Literal["interpolate", "table"]


@dataclass(frozen=True)
class AspectRow:
    """One row of the paper's table: nominal size and its (layers, hidden) shape."""

    params: float
    layers: int
    hidden: int

    @property
    def ratio(self) -> float:
        """d / L."""
        return self.hidden / self.layers


#: The paper's model shapes (Tables 7 and 9), by nominal size.
PAPER_ASPECT_TABLE: tuple[AspectRow, ...] = (
    AspectRow(3e6, 4, 256),
    AspectRow(19e6, 6, 512),
    AspectRow(85e6, 12, 768),
    AspectRow(150e6, 12, 1024),
    AspectRow(200e6, 16, 1024),
    AspectRow(470e6, 24, 1280),
    AspectRow(680e6, 24, 1536),
    AspectRow(1.2e9, 36, 1536),
    AspectRow(1.8e9, 36, 2048),
    AspectRow(4e9, 48, 2560),
    AspectRow(6e9, 54, 3072),
    AspectRow(13e9, 64, 4096),
    AspectRow(33e9, 72, 6144),
    AspectRow(64e9, 80, 8192),
)

#: The paper's head size.
PAPER_HEAD_DIM = 64
#: The paper's vocabulary (embedding parameters are not part of N).
PAPER_VOCAB = 50_304
_WIDTH_MULTIPLE = 64
_FFN_MULTIPLE = 32
_MAX_LAYERS = 4096


@dataclass(frozen=True)
class PaperShape(Geometry):
    """A concrete decoupled-head GQA shape in the paper's architecture: a
    :class:`~gqa_retrofit.arch.geometry.Geometry` and the SwiGLU FFN width."""

    intermediate: int

    @property
    def non_embedding_params(self) -> int:
        return non_embedding_params(
            self.layers, self.hidden, self.heads, self.kv_heads, head_dim=self.head_dim
        )


def ffn_size(hidden: int) -> int:
    """SwiGLU FFN width of the paper: ``8d/3`` rounded up to a multiple of 32."""
    return _FFN_MULTIPLE * math.ceil(8 * hidden / 3 / _FFN_MULTIPLE)


def non_embedding_params(
    layers: int, hidden: int, heads: int, kv_heads: int, *, head_dim: int = PAPER_HEAD_DIM
) -> int:
    """Non-embedding parameters of the paper's architecture (decoupled heads, no biases).

    Per layer: attention ``2·d·d_h·(n_h + n_kv)`` (q, o: ``d·n_h·d_h`` each; k, v:
    ``d·n_kv·d_h`` each), SwiGLU ``3·d·d_ff``, two RMSNorms ``2·d``; plus the final norm ``d``.
    """
    attention = 2 * hidden * head_dim * (heads + kv_heads)
    mlp = 3 * hidden * ffn_size(hidden)
    return layers * (attention + mlp + 2 * hidden) + hidden


def aspect_ratio(params: float, table: tuple[AspectRow, ...] = PAPER_ASPECT_TABLE) -> float:
    """d/L at ``params``: linear interpolation in log N between table rows, clamped at the ends.

    Raises:
        ConfigError: ``params`` is not a positive number.
    """
    if not params > 0 or not math.isfinite(params):
        raise ConfigError(f"invalid parameter count {params!r}: must be a positive number")
    rows = sorted(table, key=lambda r: r.params)
    if params <= rows[0].params:
        return rows[0].ratio
    if params >= rows[-1].params:
        return rows[-1].ratio
    for low, high in itertools.pairwise(rows):
        if low.params <= params <= high.params:
            t = (math.log(params) - math.log(low.params)) / (
                math.log(high.params) - math.log(low.params)
            )
            return low.ratio + t * (high.ratio - low.ratio)
    raise AssertionError("unreachable: params lies within the table")  # pragma: no cover


def _check_heads(heads: int, kv_heads: int, head_dim: int) -> None:
    if heads <= 0 or kv_heads <= 0 or head_dim <= 0:
        raise ConfigError(
            f"invalid head geometry heads={heads}, kv_heads={kv_heads}, head_dim={head_dim}: "
            "all must be positive integers"
        )
    if kv_heads > heads:
        raise ConfigError(f"kv_heads {kv_heads} exceeds heads {heads}: need kv_heads <= heads")


def table_shape(
    params: float,
    heads: int,
    kv_heads: int,
    *,
    head_dim: int = PAPER_HEAD_DIM,
    table: tuple[AspectRow, ...] = PAPER_ASPECT_TABLE,
) -> PaperShape:
    """The (L, d) of the table row whose nominal size is nearest to ``params`` (in log N).

    This reproduces the paper's own comparisons, which quote nominal sizes (e.g. 1.2B and 1.8B
    are both 36 layers) rather than exact parameter counts.

    Raises:
        ConfigError: non-positive sizes or head counts, or ``kv_heads > heads``.
    """
    _check_heads(heads, kv_heads, head_dim)
    if not params > 0 or not math.isfinite(params):
        raise ConfigError(f"invalid parameter count {params!r}: must be a positive number")
    row = min(table, key=lambda r: abs(math.log(r.params) - math.log(params)))
    return PaperShape(
        layers=row.layers,
        hidden=row.hidden,
        intermediate=ffn_size(row.hidden),
        heads=heads,
        kv_heads=kv_heads,
        head_dim=head_dim,
    )


def _width(ratio: float, layers: int) -> int:
    return max(_WIDTH_MULTIPLE, _WIDTH_MULTIPLE * round(ratio * layers / _WIDTH_MULTIPLE))


def shape_for_params(
    params: float,
    heads: int,
    kv_heads: int,
    *,
    head_dim: int = PAPER_HEAD_DIM,
    table: tuple[AspectRow, ...] = PAPER_ASPECT_TABLE,
) -> PaperShape:
    """(L, d) for a model of ``params`` non-embedding parameters (Appendix B.1).

    d/L is interpolated from the table at ``params``; L is the depth whose shape
    (d = d/L · L rounded to a multiple of 64) has the parameter count closest to ``params``,
    found by binary search over L (the count is monotone in L).

    Raises:
        ConfigError: non-positive sizes or head counts, or ``kv_heads > heads``.
    """
    _check_heads(heads, kv_heads, head_dim)
    ratio = aspect_ratio(params, table)

    def count(layers: int) -> int:
        return non_embedding_params(
            layers, _width(ratio, layers), heads, kv_heads, head_dim=head_dim
        )

    low, high = 1, _MAX_LAYERS
    if count(high) < params:
        raise ConfigError(
            f"parameter count {params:.3g} is beyond {_MAX_LAYERS} layers of the aspect table"
        )
    while low < high:  # smallest L with count(L) >= params
        mid = (low + high) // 2
        if count(mid) >= params:
            high = mid
        else:
            low = mid + 1
    layers = low
    if layers > 1 and abs(count(layers - 1) - params) <= abs(count(layers) - params):
        layers -= 1
    hidden = _width(ratio, layers)
    return PaperShape(
        layers=layers,
        hidden=hidden,
        intermediate=ffn_size(hidden),
        heads=heads,
        kv_heads=kv_heads,
        head_dim=head_dim,
    )


def model_shape(
    params: float,
    heads: int,
    kv_heads: int,
    *,
    sizing: Sizing = "interpolate",
    head_dim: int = PAPER_HEAD_DIM,
    table: tuple[AspectRow, ...] = PAPER_ASPECT_TABLE,
) -> PaperShape:
    """Shape for ``params`` by :func:`shape_for_params` or :func:`table_shape`.

    Raises:
        ConfigError: unknown ``sizing``, or invalid sizes or heads.
    """
    if sizing == "interpolate":
        return shape_for_params(params, heads, kv_heads, head_dim=head_dim, table=table)
    if sizing == "table":
        return table_shape(params, heads, kv_heads, head_dim=head_dim, table=table)
    raise ConfigError(f"invalid sizing {sizing!r}: use 'interpolate' or 'table'")
