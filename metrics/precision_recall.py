"""Improved precision and recall with the ADM evaluator's `ManifoldEstimator` semantics
(guided-diffusion evaluations/evaluator.py, after kynkaat/improved-precision-and-recall-metric):

- distances are squared Euclidean, max(|u|^2 - 2 u.v + |v|^2, 0);
- a point's radius is the (k+1)-th smallest distance to its own set, its own distance included (so the k-th
  nearest neighbour excluding self when that distance is 0; in float16 it need not be), k = 3;
- membership is inclusive, d <= radius;
- precision = share of fake rows inside the real manifold, recall = share of real rows inside the fake one.

`half=True` (default) reproduces the distances of the evaluator's TensorFlow graph on a CPU bit for bit.
The graph computes `maximum(norm_u - 2 * matmul(U, V^T) + norm_v, 0)` with every tensor in float16, so
every operation rounds to half. What TensorFlow 2.x does on an x86 CPU, found by experiment (probe inputs
whose sum depends on the order of additions; see scripts/make_adm_fixtures.py) and emulated here:

- `square` and the element-wise `-`, `*2`, `+`, `maximum` are computed in float32 and rounded to half;
- `reduce_sum` over a row is Eigen's inner-dimension reducer on 8-lane half packets: four packet
  accumulators over strides of 32, combined in order, each addition rounded to half; the 8 lanes are summed
  as floats (pairwise) and rounded once; rows longer than 1600 are split in two halves first (Eigen's tree
  reduction, leaf of 200 packets), recursively;
- `matmul` converts to float32 and sums the exact products one after the other in float32, in slices of
  `k_block` along the feature dimension (Eigen's contraction with oneDNN kernels: 296 for 2048-d features
  when the contraction runs on several threads, the evaluator's default), each slice from zero and then
  added to the result; the result is rounded to half.

A (row block, column block) pair whose half result is not finite (with inputs in 10,000-row batches, as the
evaluator's `row_batch_size`/`col_batch_size`) is recomputed in float32 from the unrounded inputs, as the
graph's `tf.cond` does: float32 squares, the same reducer on float packets (leaf 1024 packets), and a matmul
that sums fused products in slices chosen by the block's shape (`tf_cpu_float_k_slices`).

Exact sequential float32 sums cost one vector operation per feature, so they are done only where they can
change a result. Each block is first computed with float64 matrix products, which bound the float32 result
to an interval; where the interval holds one half value the rounded result is known exactly, elsewhere the
distance is bracketed. Only bracketed entries that could decide a radius (candidates for the (k+1)-th
smallest) or a membership (radius inside the bracket) are recomputed by the exact sequential emulation.

`half=False` keeps plain float32 throughout (not ADM). Memory is O(rows_per_chunk x batch) whatever N is:
radii merge the k + 1 smallest distances column block by column block.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

ArrayLike = np.ndarray | torch.Tensor

PR_K = 3  # the ADM evaluator's k
ADM_BATCH_SIZE = 10_000  # ManifoldEstimator's row_batch_size and col_batch_size
_PACKET = 8  # lanes of the AVX packets TensorFlow's CPU kernels use (Packet8h, Packet8f)
_HALF_LEAF = 200  # Eigen's tree-reduction leaf, in packets, for half
_FLOAT_LEAF = 1024  # ... for float
_U32 = 2.0**-24  # unit roundoff of float32
_U64 = 2.0**-53
_HALF_MAX = 65504.0
_CHUNK_ROWS = 256  # rows per chunk of a block; bounds memory, changes nothing in the result
_EXACT_PAIRS = 1 << 15  # pairs per chunk of the exact sequential emulation


def tf_cpu_k_block(dim: int) -> int:
    """Slice length of TF-CPU's float16 matmul along the feature dimension when the contraction is threaded.

    Eigen caps its depth block at 320 on several threads; TensorFlow's oneDNN contraction kernel then cuts
    the dimension into ceil(dim / 320) equal slices rounded up to 8 (measured: 296 for dim 2048). A
    single-threaded session (or very small blocks) uses other slices: pass `k_block` measured there.
    """
    if dim <= 320:
        return dim
    slices = math.ceil(dim / 320)
    return min(dim, math.ceil((dim // slices) / _PACKET) * _PACKET)


_SMALL_FLOAT_BLOCK = 1_000_000  # rows x columns up to which oneDNN used the other float32 slicing


def tf_cpu_float_k_slices(dim: int, block_rows: int, block_cols: int, block: int = 384) -> list[int]:
    """Slice boundaries of TF-CPU's float32 matmul (oneDNN) along the feature dimension, which depend on the
    block's shape. Measured at dim 2048: slices of 384 and a last one of 128 for blocks of 1500 x 1500 and
    larger; for blocks up to 1000 x 1000 (40 x 30, 500 x 1500 too), four of 384 and then the last full
    block and the remainder (512) as two halves of 256. Other dimensions and the exact threshold (between
    1e6 and 2.25e6 entries) are extrapolated, not measured."""
    if dim <= block:
        return [0, dim]
    full, rest = divmod(dim, block)
    sizes = [block] * full
    if rest:
        if block_rows * block_cols <= _SMALL_FLOAT_BLOCK:
            tail = sizes.pop() + rest
            sizes += [tail // 2, tail - tail // 2]
        else:
            sizes.append(rest)
    return [0, *np.cumsum(sizes).tolist()]


def _uniform_slices(dim: int, block: int) -> list[int]:
    return [*range(0, dim, block), dim]


def _to_half(x: torch.Tensor) -> torch.Tensor:
    """Round float32 values to float16, keeping a float32 container (overflow gives inf, as IEEE)."""
    return x.to(torch.float16).to(x.dtype)


def _keep(x: torch.Tensor) -> torch.Tensor:
    return x


def _eigen_row_sums(x: torch.Tensor, rnd: Callable[[torch.Tensor], torch.Tensor], leaf: int) -> torch.Tensor:
    """Sum each row of x [n, L] (float32 holding values of the kernel's type) as Eigen's InnerMostDimReducer
    on the contiguous tensor. `rnd` rounds a float32 result to the kernel's type (half, or nothing).

    The tree split is aligned to packets of the flat buffer, so it depends on where the row starts
    (row * L mod 8): rows are summed in groups that share that offset."""
    n, length = x.shape
    out = x.new_empty(n)
    offsets = (torch.arange(n, device=x.device) * length) % _PACKET
    for offset in offsets.unique().tolist():
        rows = offsets == offset
        out[rows] = _eigen_range_sums(x[rows], int(offset), rnd, leaf)
    return out


def _eigen_range_sums(
    x: torch.Tensor, first: int, rnd: Callable[[torch.Tensor], torch.Tensor], leaf: int
) -> torch.Tensor:
    """Eigen's reducer on x [n, L] whose first element sits at flat index `first` (mod 8)."""
    n, length = x.shape
    zero = x.new_zeros(n)
    if length > _PACKET * leaf:  # tree reduction: split on a packet boundary of the flat buffer
        split = _PACKET * math.ceil((first + math.ceil(length / 2)) / _PACKET)
        left = min(split - first, length)
        total = rnd(zero + _eigen_range_sums(x[:, :left], first, rnd, leaf))
        if left < length:
            total = rnd(total + _eigen_range_sums(x[:, left:], split, rnd, leaf))
        return total
    start = 0
    acc = x.new_zeros(n, _PACKET)
    if length >= 4 * _PACKET:
        four = [x.new_zeros(n, _PACKET) for _ in range(4)]
        stop = (length // (4 * _PACKET)) * 4 * _PACKET
        for start in range(0, stop, 4 * _PACKET):
            for j in range(4):
                lo = start + j * _PACKET
                four[j] = rnd(four[j] + x[:, lo : lo + _PACKET])
        start = stop
        acc = rnd(rnd(rnd(four[0] + four[1]) + four[2]) + four[3])
    while start + _PACKET <= length:
        acc = rnd(acc + x[:, start : start + _PACKET])
        start += _PACKET
    scalar = zero
    for j in range(start, length):
        scalar = rnd(scalar + x[:, j])
    lanes = acc[:, :4] + acc[:, 4:]  # predux on float lanes: (0+4, 1+5, 2+6, 3+7), then pairs
    lanes = lanes[:, :2] + lanes[:, 2:]
    return rnd(scalar + rnd(lanes[:, 0] + lanes[:, 1]))


def _sequential_dot(a: torch.Tensor, b: torch.Tensor, slices: list[int], fused: bool) -> torch.Tensor:
    """Row-wise dot products [P] of a, b [P, K] summed one product after the other in float32 within each
    slice [slices[s], slices[s+1]), each slice from zero and then added to the total (TF-CPU's matmul).
    `fused`: each product is rounded together with its addition (FMA on float inputs); products of half
    inputs are exact in float32, so there it makes no difference."""
    total = None
    for start, stop in itertools.pairwise(slices):
        acc = a.new_zeros(a.shape[0])
        for j in range(start, stop):
            if fused:
                acc = (acc.double() + a[:, j].double() * b[:, j].double()).float()
            else:
                acc = acc + a[:, j] * b[:, j]
        total = acc if total is None else total + acc
    assert total is not None
    return total


@dataclass
class _Rows:
    """One feature set prepared once: float32 rows, half-rounded rows and the graph's norms."""

    x: torch.Tensor
    slices: list[int]  # of the half graph's matmul
    float_k_block: int | None  # uniform slices of the float32 fallback's matmul, else TF-CPU's by shape

    def float_slices(self, block_rows: int, block_cols: int) -> list[int]:
        dim = self.x.shape[1]
        if self.float_k_block:
            return _uniform_slices(dim, self.float_k_block)
        return tf_cpu_float_k_slices(dim, block_rows, block_cols)

    def __post_init__(self) -> None:
        self.h = _to_half(self.x)
        self.h64 = self.h.double()
        self.norm_h = _eigen_row_sums(_to_half(self.h * self.h), _to_half, _HALF_LEAF)
        self.nonneg = bool((self.x >= 0).all())
        self._x64: torch.Tensor | None = None
        self._norm_f: torch.Tensor | None = None

    @property
    def x64(self) -> torch.Tensor:
        if self._x64 is None:
            self._x64 = self.x.double()
        return self._x64

    @property
    def norm_f(self) -> torch.Tensor:
        if self._norm_f is None:
            self._norm_f = _eigen_row_sums(self.x * self.x, _keep, _FLOAT_LEAF)
        return self._norm_f


def _half_distance(norm_u: torch.Tensor, mm: torch.Tensor, norm_v: torch.Tensor) -> torch.Tensor:
    """The graph's element-wise tail in half: maximum((norm_u - 2*mm) + norm_v, 0), each op rounded."""
    d = _to_half(_to_half(norm_u[:, None] - _to_half(2 * mm)) + norm_v[None, :])
    return torch.maximum(d, d.new_zeros(()))


def _float_distance(norm_u: torch.Tensor, mm: torch.Tensor, norm_v: torch.Tensor) -> torch.Tensor:
    return torch.maximum((norm_u[:, None] - 2 * mm) + norm_v[None, :], mm.new_zeros(()))


def _sum_error(
    rows: _Rows, cols: _Rows, ri: slice, ci: slice, mm: torch.Tensor,
    values64: Callable[[_Rows], torch.Tensor], slices: list[int],
) -> torch.Tensor:
    """Bound on |float32 sliced sequential sum - float64 product| for each entry of a block."""
    if rows.nonneg and cols.nonneg:
        magnitude = mm.abs()
    else:
        magnitude = values64(rows)[ri].abs() @ values64(cols)[ci].abs().T
    dim = rows.x.shape[1]
    longest = max(b - a for a, b in itertools.pairwise(slices))
    return magnitude * (_U32 * (longest + len(slices) + 2) + 4 * dim * _U64)


def _bracket(rows: _Rows, ri: slice, cols: _Rows, ci: slice, half: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(d_lo, d_hi) [n, m]: the graph's distances lie in [d_lo, d_hi]; equal where known exactly."""
    if half:
        mm = rows.h64[ri] @ cols.h64[ci].T
        err = _sum_error(rows, cols, ri, ci, mm, lambda r: r.h64, rows.slices)
        mm_lo = _to_half((mm - err).float())
        mm_hi = _to_half((mm + err).float())
        return _half_distance(rows.norm_h[ri], mm_hi, cols.norm_h[ci]), _half_distance(
            rows.norm_h[ri], mm_lo, cols.norm_h[ci]
        )
    mm = rows.x64[ri] @ cols.x64[ci].T
    # the slices depend on the block's shape: bound with the longer of both possible slicings
    slices = max(rows.float_slices(1, 1), rows.float_slices(10**9, 1), key=len)
    err = _sum_error(rows, cols, ri, ci, mm, lambda r: r.x64, slices)
    nu, nv = rows.norm_f[ri].double()[:, None], cols.norm_f[ci].double()[None, :]
    d = (nu - 2 * mm) + nv
    # float32 rounding of the subtraction and the addition, plus the product's error, doubled
    slack = 2 * err + 2 * _U32 * (nu + 2 * mm.abs() + 2 * err + nv) + 1e-30
    return (d - slack).clamp(min=0).float(), (d + slack).clamp(min=0).float()


def _exact_distances(
    rows: _Rows, i: torch.Tensor, cols: _Rows, j: torch.Tensor, half: bool, block_shape: tuple[int, int]
) -> torch.Tensor:
    """The graph's distances for the pairs (rows i, cols j) of blocks of `block_shape`, by the sequential
    emulation."""
    out = torch.empty(i.shape[0], dtype=torch.float32, device=rows.x.device)
    for start in range(0, i.shape[0], _EXACT_PAIRS):
        ii, jj = i[start : start + _EXACT_PAIRS], j[start : start + _EXACT_PAIRS]
        if half:
            mm = _to_half(_sequential_dot(rows.h[ii], cols.h[jj], rows.slices, fused=False))
            d = _to_half(_to_half(rows.norm_h[ii] - _to_half(2 * mm)) + cols.norm_h[jj])
        else:
            mm = _sequential_dot(rows.x[ii], cols.x[jj], rows.float_slices(*block_shape), fused=True)
            d = (rows.norm_f[ii] - 2 * mm) + cols.norm_f[jj]
        out[start : start + _EXACT_PAIRS] = torch.maximum(d, d.new_zeros(()))
    return out


def _chunks(n: int, size: int):
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


def _row_chunks(n: int, batch: int):
    """Chunks of at most _CHUNK_ROWS rows, none straddling two of the evaluator's row batches."""
    for rb in _chunks(n, batch):
        for rc in _chunks(rb.stop - rb.start, _CHUNK_ROWS):
            yield slice(rb.start + rc.start, rb.start + rc.stop)


def _block_is_finite(rows: _Rows, rb: slice, cols: _Rows, cb: slice) -> bool:
    """Whether the graph's half distances of one (row batch, column batch) are all finite."""
    nu, nv = rows.norm_h[rb], cols.norm_h[cb]
    if not (torch.isfinite(nu).all() and torch.isfinite(nv).all()):
        return False  # inf - 2 mm (+ norm) stays inf or becomes nan
    # |2 u.v| <= 2 sqrt(nu nv) (up to rounding), so small norms cannot overflow
    if float(nu.max() + nv.max() + 2 * (nu.max() * nv.max()).sqrt()) * 1.01 < _HALF_MAX:
        return True
    for rc in _chunks(rb.stop - rb.start, _CHUNK_ROWS):
        ri = slice(rb.start + rc.start, rb.start + rc.stop)
        d_lo, d_hi = _bracket(rows, ri, cols, cb, half=True)
        finite_lo, finite_hi = torch.isfinite(d_lo), torch.isfinite(d_hi)
        if not (finite_lo & finite_hi).all():
            unsure = finite_lo != finite_hi
            if (~finite_lo & ~finite_hi).any():
                return False
            i, j = unsure.nonzero(as_tuple=True)
            exact = _exact_distances(rows, i + ri.start, cols, j + cb.start, True, (0, 0))
            if not torch.isfinite(exact).all():
                return False
    return True


def _block_paths(rows: _Rows, cols: _Rows, half: bool, batch: int) -> torch.Tensor:
    """[row batches, column batches] of the evaluator: True = half graph, False = float32 fallback."""
    row_batches, col_batches = list(_chunks(rows.x.shape[0], batch)), list(_chunks(cols.x.shape[0], batch))
    paths = torch.zeros(len(row_batches), len(col_batches), dtype=torch.bool, device=rows.x.device)
    for a, rb in enumerate(row_batches):
        for b, cb in enumerate(col_batches):
            paths[a, b] = half and _block_is_finite(rows, rb, cols, cb)
    return paths


def _distance_rows(rows: _Rows, ri: slice, cols: _Rows, paths: torch.Tensor, batch: int):
    """Yield (column slice, d_lo, d_hi) for rows ri (within one row batch) against every column batch."""
    for b, cb in enumerate(_chunks(cols.x.shape[0], batch)):
        yield cb, *_bracket(rows, ri, cols, cb, bool(paths[ri.start // batch, b]))


def _resolve(
    rows: _Rows, cols: _Rows, i: torch.Tensor, j: torch.Tensor, paths: torch.Tensor, batch: int
) -> torch.Tensor:
    """Exact distances of pairs (i, j), each on its block's path."""
    out = torch.empty(i.shape[0], dtype=torch.float32, device=rows.x.device)
    row_batch, col_batch = i // batch, j // batch
    half = paths[row_batch, col_batch]
    if half.any():
        out[half] = _exact_distances(rows, i[half], cols, j[half], True, (0, 0))
    # float32 blocks: oneDNN's slices depend on the block's shape
    block_rows = (rows.x.shape[0] - row_batch * batch).clamp(max=batch)
    block_cols = (cols.x.shape[0] - col_batch * batch).clamp(max=batch)
    small = block_rows * block_cols <= _SMALL_FLOAT_BLOCK
    for shape, sel in (((1, 1), ~half & small), ((batch, batch), ~half & ~small)):
        if sel.any():
            out[sel] = _exact_distances(rows, i[sel], cols, j[sel], False, shape)
    return out


def _merge_smallest(nearest: torch.Tensor, values: torch.Tensor, count: int) -> torch.Tensor:
    """The `count` smallest of each row of [nearest | values], ascending."""
    candidates = torch.cat([nearest, values], dim=1)
    return candidates.topk(min(count, candidates.shape[1]), dim=1, largest=False, sorted=True).values


def _radii(x: _Rows, k: int, half: bool, batch: int) -> torch.Tensor:
    """The (k+1)-th smallest distance of each row, merged column block by column block: memory
    O(rows x batch) whatever N is."""
    n = x.x.shape[0]
    if n <= k:
        raise ValueError(f"k-NN radii with k={k} need more than {k} feature rows, got {n}")
    paths = _block_paths(x, x, half, batch)
    radii = torch.empty(n, dtype=torch.float32, device=x.x.device)
    for ri in (_row_chunks(n, batch) if half else _chunks(n, batch)):
        nearest = x.x.new_empty(ri.stop - ri.start, 0)  # the k + 1 smallest exact distances so far
        if not half:
            for cb in _chunks(n, batch):
                nearest = _merge_smallest(nearest, _plain(x.x[ri], x.x[cb]), k + 1)
            radii[ri] = nearest[:, k]
            continue
        upper = x.x.new_empty(ri.stop - ri.start, 0)  # the k + 1 smallest upper bounds so far
        for cb, d_lo, d_hi in _distance_rows(x, ri, x, paths, batch):
            upper = _merge_smallest(upper, d_hi, k + 1)
            # the (k+1)-th smallest upper bound so far bounds the radius from above (it only falls)
            bound = upper[:, k] if upper.shape[1] > k else torch.full_like(upper[:, 0], float("inf"))
            inexact = d_lo != d_hi
            # an inexact entry whose lower end is above the bound is above the radius: it cannot be among
            # the k + 1 smallest; the others are resolved exactly (a few per block)
            unsure = inexact & (d_lo <= bound[:, None])
            values = d_hi.masked_fill(inexact & ~unsure, float("inf"))
            if unsure.any():
                i, j = unsure.nonzero(as_tuple=True)
                values[i, j] = _resolve(x, x, i + ri.start, j + cb.start, paths, batch)
            nearest = _merge_smallest(nearest, values, k + 1)
        radii[ri] = nearest[:, k]
    return radii


def _squared_distances(u: torch.Tensor, v: torch.Tensor, half: bool = False) -> torch.Tensor:
    """[n, m] squared distances: float32 (half=False), or the evaluator's graph (half=True)."""
    return adm_distances(u, v) if half else _plain(u, v)


def adm_distances(
    u: ArrayLike, v: ArrayLike, k_block: int | None = None, float_k_block: int | None = None
) -> torch.Tensor:
    """[n, m] float32: the evaluator's `DistanceBlock.pairwise_distances(u, v)` for one block, bit for bit
    (half graph, or float32 when the half result is not finite)."""
    rows = _prepare(_as_rows("u", u), k_block, float_k_block)
    cols = _prepare(_as_rows("v", v, rows.x.device), k_block, float_k_block)
    n, m = rows.x.shape[0], cols.x.shape[0]
    half = _block_is_finite(rows, slice(0, n), cols, slice(0, m))
    d_lo, d_hi = _bracket(rows, slice(0, n), cols, slice(0, m), half)
    unsure = d_lo != d_hi
    if unsure.any():
        i, j = unsure.nonzero(as_tuple=True)
        d_lo[i, j] = _exact_distances(rows, i, cols, j, half, (n, m))
    return d_lo


def _plain(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """float32 squared distances (half=False)."""
    return ((u * u).sum(1, keepdim=True) - 2 * u @ v.T + (v * v).sum(1)[None, :]).clamp(min=0)


def _memberships(
    rows: _Rows, row_radii: torch.Tensor, cols: _Rows, col_radii: torch.Tensor, half: bool, batch: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(rows inside some column ball, columns inside some row ball), distances rows x columns as the
    evaluator's evaluate_pr (rows = reference batch, columns = sample batch)."""
    n, m = rows.x.shape[0], cols.x.shape[0]
    rows_in = torch.zeros(n, dtype=torch.bool, device=rows.x.device)
    cols_in = torch.zeros(m, dtype=torch.bool, device=rows.x.device)
    if not half:
        for ri in _chunks(n, batch):
            for cb in _chunks(m, batch):
                d = _plain(rows.x[ri], cols.x[cb])
                rows_in[ri] |= (d <= col_radii[None, cb]).any(dim=1)
                cols_in[cb] |= (d <= row_radii[ri, None]).any(dim=0)
        return rows_in, cols_in
    paths = _block_paths(rows, cols, True, batch)
    pending_i, pending_j = [], []
    for ri in _row_chunks(n, batch):
        for cb, d_lo, d_hi in _distance_rows(rows, ri, cols, paths, batch):
            rc, cr = col_radii[None, cb], row_radii[ri, None]
            rows_in[ri] |= (d_hi <= rc).any(dim=1)
            cols_in[cb] |= (d_hi <= cr).any(dim=0)
            unsure = ((d_lo <= rc) & (d_hi > rc)) | ((d_lo <= cr) & (d_hi > cr))
            if unsure.any():
                i, j = unsure.nonzero(as_tuple=True)
                pending_i.append(i + ri.start)
                pending_j.append(j + cb.start)
    if pending_i:
        i, j = torch.cat(pending_i), torch.cat(pending_j)
        needed = ~rows_in[i] | ~cols_in[j]  # pairs that can still change a membership
        i, j = i[needed], j[needed]
        d = _resolve(rows, cols, i, j, paths, batch)
        rows_in[i[d <= col_radii[j]]] = True
        cols_in[j[d <= row_radii[i]]] = True
    return rows_in, cols_in


def manifold_radii(
    features: ArrayLike, k: int = PR_K, half: bool = True, block_size: int = ADM_BATCH_SIZE,
    k_block: int | None = None, float_k_block: int | None = None,
) -> torch.Tensor:
    """[N] squared distance from each row to its k-th nearest neighbour in the same set (the evaluator's
    `manifold_radii`: the (k+1)-th smallest distance, self included). `block_size` is the evaluator's batch
    size; `k_block`/`float_k_block` the matmul slices (default: TF-CPU's, see tf_cpu_k_block)."""
    x = _as_rows("features", features)
    return _radii(_prepare(x, k_block, float_k_block), k, half, block_size)


def _prepare(x: torch.Tensor, k_block: int | None, float_k_block: int | None) -> _Rows:
    dim = x.shape[1]
    return _Rows(x, _uniform_slices(dim, k_block or tf_cpu_k_block(dim)), float_k_block)


def precision_recall(
    real: ArrayLike,
    fake: ArrayLike,
    k: int = PR_K,
    half: bool = True,
    block_size: int = ADM_BATCH_SIZE,
    device: str | torch.device | None = None,
    k_block: int | None = None,
    float_k_block: int | None = None,
) -> tuple[float, float]:
    """(precision, recall) of fake rows [M, d] against real rows [N, d], as the evaluator's
    `compute_prec_recall(real, fake)`."""
    precision, recall, _, _ = precision_recall_with_radii(
        real, fake, k, half, block_size, device, k_block, float_k_block
    )
    return precision, recall


def precision_recall_with_radii(
    real: ArrayLike,
    fake: ArrayLike,
    k: int = PR_K,
    half: bool = True,
    block_size: int = ADM_BATCH_SIZE,
    device: str | torch.device | None = None,
    k_block: int | None = None,
    float_k_block: int | None = None,
) -> tuple[float, float, torch.Tensor, torch.Tensor]:
    """(precision, recall, real radii [N], fake radii [M]): `precision_recall` and the radii it used."""
    r, f = paired_rows(real, fake, device)
    real_rows, fake_rows = _prepare(r, k_block, float_k_block), _prepare(f, k_block, float_k_block)
    real_radii = _radii(real_rows, k, half, block_size)
    fake_radii = _radii(fake_rows, k, half, block_size)
    real_in, fake_in = _memberships(real_rows, real_radii, fake_rows, fake_radii, half, block_size)
    return float(fake_in.double().mean()), float(real_in.double().mean()), real_radii, fake_radii


def paired_rows(
    real: ArrayLike, fake: ArrayLike, device: str | torch.device | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validated float32 real [N, d] and fake [M, d] rows on one device."""
    r = _as_rows("real features", real, device)
    f = _as_rows("fake features", fake, r.device)
    if r.shape[1] != f.shape[1]:
        raise ValueError(f"real and fake features differ in dimension: {r.shape[1]} vs {f.shape[1]}")
    return r, f


def _as_rows(name: str, value: ArrayLike, device: str | torch.device | None = None) -> torch.Tensor:
    x = torch.as_tensor(value).detach().to(device=device, dtype=torch.float32)
    if x.ndim != 2:
        raise ValueError(f"{name} must be [N, d], got shape {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contain NaN or infinite values")
    return x
