"""Differentiable triangulation: undistortion of 2D points and the DLT, in ``keras.ops`` only.

Only ``keras.ops`` is used (no direct TensorFlow calls), so the same code runs under the
TensorFlow, JAX and PyTorch backends of Keras 3.

The DLT (DESIGN.md section 5). For one 3D point seen in V views, each view contributes the two
rows ``u P[2] - P[0]`` and ``v P[2] - P[1]`` of a ``(2V, 4)`` matrix ``A``; the homogeneous
point is the right singular vector of ``A`` for its smallest singular value, i.e. the
eigenvector of ``B = A^T A`` (4 x 4) with the smallest eigenvalue. ``method="sii"`` finds it by
shifted inverse iterations, ``x <- (B + s I)^-1 x; x <- x / |x|``, written as elementwise
arithmetic over all points at once (a closed-form 4 x 4 adjugate, no batched matmul or solve,
which are slow for tiny matrices). Everything that depends on P only (normalising frame, camera
centres, world normalisation, the folded row coefficients) is computed at P's own batch shape
and only broadcast against the points when B is formed; B and its adjugate are kept as their 10
unique entries stacked on a leading axis, so XLA compiles each stage into one loop. ``method="svd"`` is the reference: ``keras.ops.svd`` of the
same ``A``.

Numerics (where the published TensorFlow re-implementation got NaNs):

* Each view is normalised Hartley style by ONE constant per view: its principal point is moved to
  the origin, pixels are divided by the mean focal length of the views (one number per sample,
  so pixel errors in every view keep the same weight, as in the plain system) and ``P`` by the
  norm of its third row's first three entries (so each row's residual is depth x pixel error,
  whatever the scale of ``P``). Dividing each row by its own norm would make the weights depend
  on the point, which nearly doubles the error under noise.
* The world is re-centred on the point the cameras' optical axes converge to and scaled by the
  cameras' distance to it, so the homogeneous solution is about ``(small, small, small, 1)``.
* ``B`` is divided by its trace and shifted by 1e-6 (float32; 1e-12 in float64), so
  ``B + s I`` is positive definite; the solve uses the adjugate, ``(B + s I)^-1 = adj / det``,
  dropping ``det > 0`` since ``x`` is normalised after every iteration anyway: no division by a
  quantity that can vanish. The start vector is fixed (the convergence point of the axes).
* The homogeneous divide uses a sign-preserving floor on ``|w|``.
"""
from __future__ import annotations

import itertools

import keras
from keras import ops

from common import lens_ops

METHODS = ("sii", "svd")
DTYPES = ("float32", "float64")
# Shift of B (its trace normalised to 1), per precision: large against the rounding of B
# (~1e-7 in float32, ~1e-16 in float64), small against the second-smallest eigenvalue of any
# usable camera geometry (convergence per iteration is about shift / that eigenvalue).
RELATIVE_SHIFT = {"float32": 1e-6, "float64": 1e-12}
# Floor on trace(B) (about 2V for unit weights): reached only when (nearly) all weights are 0.
MIN_TRACE = {"float32": 1e-12, "float64": 1e-100}
# Regularisation of the optical-axes convergence point (relative to one camera's weight): only
# matters for (nearly) parallel axes, where it falls back to the centroid of the cameras.
AXES_REGULARISATION = 1e-3
# Floor on |w| in the homogeneous divide (the solution has |x| = 1 and w ~ 1 for a real point).
MIN_HOMOGENEOUS_W = 1e-9
# Floor on the lens scale (1 + radial + tangential) in the undistortion's fixed-point division.
MIN_LENS_SCALE = 1e-3
# The distortion polynomial is evaluated with r^2 (normalised image radius squared) clipped to
# this: 45 degrees off-axis, far beyond any Human3.6M lens (about 25 degrees at the corners);
# keeps points far outside the model of the lens finite instead of overflowing.
MAX_RADIUS_SQUARED = 1.0


def _tiny(dtype: str) -> float:
    """A positive floor that stays far above the smallest normal number of ``dtype``."""
    return 1e-30 if dtype == "float32" else 1e-200


# --------------------------------------------------------------------------- undistortion

def undistort(points_2d, K, dist, iterations: int = 6, dtype: str = "float32"):
    """Distorted pixels -> pinhole pixels, inverting the lens distortion (``geometry.distort_normalized``).

    points_2d: (..., N, 2) distorted pixels (what the image shows; pixel centres at integers).
    K: (..., 3, 3) intrinsics of those pixels, any affine top two rows: a crop's K, also a
    rotated crop's (whose K is no longer upper triangular), works.
    dist: (..., 6) ordered [k1, k2, k3, p1, p2, tangential_factor] (1: the official Human3.6M
    formula, 2: OpenCV's); a (..., 5) dist without the factor is Human3.6M's.
    The leading axes of K and dist are those of points_2d without N (e.g. points (B, V, J, 2),
    K (B, V, 3, 3), dist (B, V, 6)). Returns (..., N, 2) pinhole pixels, i.e. what ``K [R|t]``
    gives.

    Fixed-point iteration ``xy <- (xy_d - offset(xy)) / scale(xy)`` on normalised coordinates,
    the distortion being ``xy_d = xy * scale(xy) + offset(xy)`` with ``scale = 1 + k1 r2 +
    k2 r2^2 + k3 r2^3 + a (p1 y + p2 x)`` and ``offset = (p2 r2, p1 r2)``. Each step shrinks
    the error about 20-fold even at the corners of the Human3.6M frames (where the distortion
    reaches 23 px): 6 iterations leave < 1e-6 px in float64, i.e. float32 rounding only.
    Differentiable in all inputs.
    """
    _check_dtype(dtype)
    points_2d = ops.convert_to_tensor(points_2d, dtype)
    K = ops.expand_dims(ops.convert_to_tensor(K, dtype), -3)            # (..., 1, 3, 3)
    dist = ops.expand_dims(ops.convert_to_tensor(dist, dtype), -2)      # (..., 1, 5 or 6)
    a, b, c = K[..., 0, 0], K[..., 0, 1], K[..., 0, 2]
    d, e, f = K[..., 1, 0], K[..., 1, 1], K[..., 1, 2]
    # Normalised target: the inverse of K's 2 x 2 part applied to (u - c, v - f).
    du, dv = points_2d[..., 0] - c, points_2d[..., 1] - f
    determinant = a * e - b * d
    x_target, y_target = (e * du - b * dv) / determinant, (a * dv - d * du) / determinant
    x, y = x_target, y_target
    for _ in range(iterations):
        r2 = ops.minimum(x * x + y * y, MAX_RADIUS_SQUARED)
        scale, offset_x, offset_y = lens_ops.lens_terms(x, y, r2, dist)
        scale = _sign_preserving_floor(scale, MIN_LENS_SCALE)
        x, y = (x_target - offset_x) / scale, (y_target - offset_y) / scale
    return ops.stack([a * x + b * y + c, d * x + e * y + f], axis=-1)


# --------------------------------------------------------------------------- triangulation

def triangulate(points_2d, P, weights=None, method: str = "sii", iterations: int = 2,
                dtype: str = "float32", view_mask=None):
    """Triangulate points seen in V views by the DLT.

    points_2d: (..., V, 2) pinhole (undistorted) pixels.
    P: (..., V, 3, 4) projection matrices of those pixels (any scale per view).
    weights: optional (..., V) non-negative per-view weights (multiply the view's two rows).
    view_mask: optional (..., V) of 0 and 1 at P's leading shape (e.g. (B, 1, V) for P
    (B, 1, V, 3, 4)): a masked view takes no part at all, neither in the system nor in the
    normalisation (whose centre and scale come from the cameras), so the result equals the
    DLT of the other views alone.
    The leading axes of P and weights broadcast against those of points_2d, e.g. points
    (B, J, V, 2) with P (B, 1, V, 3, 4). method: "sii" (shifted inverse iterations, the fast
    one) or "svd" (keras.ops.svd of the same normalised system, the reference). iterations:
    SII steps (2 to 3 are as accurate as the SVD). dtype: "float32" or "float64", the precision
    of the whole computation. Returns (..., 3) points in P's world units (mm).
    """
    _check_dtype(dtype)
    if method not in METHODS:
        raise ValueError(f"triangulate: method must be one of {METHODS}, got {method!r}.")
    if method == "sii" and (not isinstance(iterations, int) or iterations < 1):
        raise ValueError(f"triangulate: iterations must be a positive int, got {iterations!r}.")
    if view_mask is not None:
        view_mask = ops.convert_to_tensor(view_mask, dtype)
        weights = view_mask if weights is None else weights * view_mask
    u, v, P, weights = _views_first(points_2d, P, weights, dtype)
    frame = _normalising_frame(P, dtype, None if view_mask is None else
                               ops.moveaxis(_pad_leading(view_mask, len(P.shape) - 2 - len(view_mask.shape)), -1, 0))
    if method == "sii":
        gram = _stacked_gram(u, v, frame, weights)
        homogeneous = _smallest_eigenvector_sii(gram, iterations, dtype)
    else:
        homogeneous = _smallest_singular_vector_svd(_design_columns(u, v, frame, weights))
    return _dehomogenise(homogeneous, frame)


def _check_dtype(dtype: str) -> None:
    if dtype not in DTYPES:
        raise ValueError(f"dlt_layer: dtype must be one of {DTYPES}, got {dtype!r}.")


def _views_first(points_2d, P, weights, dtype):
    """Moves the view axis (and P's matrix axes) to the front, batch axes last.

    Returns u, v: lists of V tensors (...); P: (V, 3, 4, ...); weights: list of V tensors (...)
    or None, every tensor padded with leading singleton axes to the same number of batch axes,
    so they broadcast. Batch axes last (and the views unrolled) makes every step below an
    elementwise operation on long contiguous vectors. V must be static.
    """
    points_2d = ops.convert_to_tensor(points_2d, dtype)
    P = ops.convert_to_tensor(P, dtype)
    _check_shape("points_2d", points_2d, (2,))
    _check_shape("P", P, (3, 4))
    num_views = points_2d.shape[-2]
    if num_views is None:
        num_views = P.shape[-3]
    if num_views is None:
        raise ValueError("triangulate: the number of views (axis -2 of points_2d or -3 of P) "
                         "must be static.")
    if P.shape[-3] is not None and num_views is not None and P.shape[-3] != num_views:
        raise ValueError(f"triangulate: points_2d has {num_views} views (shape "
                         f"{points_2d.shape}) but P has {P.shape[-3]} (shape {P.shape}).")
    batch_ranks = [len(points_2d.shape) - 2, len(P.shape) - 3]
    if weights is not None:
        weights = ops.convert_to_tensor(weights, dtype)
        if len(weights.shape) < 1 or weights.shape[-1] not in (None, num_views):
            raise ValueError(f"triangulate: weights must be (..., V) with V = {num_views}, "
                             f"got shape {weights.shape}.")
        batch_ranks.append(len(weights.shape) - 1)
    rank = max(batch_ranks)
    points_2d = _pad_leading(points_2d, rank - batch_ranks[0])
    P = ops.moveaxis(_pad_leading(P, rank - batch_ranks[1]), (-3, -2, -1), (0, 1, 2))
    # Points and weights as per-view lists: plain strided slices, which XLA fuses into their
    # consumers (no transposed copy of the per-point tensors).
    u = [points_2d[..., view, 0] for view in range(num_views)]
    v = [points_2d[..., view, 1] for view in range(num_views)]
    if weights is not None:
        weights = _pad_leading(weights, rank - batch_ranks[2])
        weights = [weights[..., view] for view in range(num_views)]
    return u, v, P, weights


def _check_shape(name, tensor, minor_shape):
    """Raises unless ``tensor`` is (..., V, *minor_shape)."""
    shape = tuple(tensor.shape)
    minor_ok = all(got in (None, want) for got, want in zip(shape[-len(minor_shape):], minor_shape))
    if len(shape) < len(minor_shape) + 1 or not minor_ok:
        expected = ", ".join(str(size) for size in minor_shape)
        raise ValueError(f"triangulate: {name} has shape {shape}; expected (..., V, {expected}).")


def _pad_leading(tensor, count):
    for _ in range(count):
        tensor = ops.expand_dims(tensor, 0)
    return tensor


def _dot3(a, b):
    """Dot product of two 3-vectors given as sequences of component tensors (extra ignored)."""
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def _cross3(a, b):
    return [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]


def _normalising_frame(P, dtype, view_mask=None):
    """The per-view image normalisation and the world normalisation of one sample.

    P: (V, 3, 4, ...); view_mask: None or (V, ...) of 0/1 (the views that count). Returns a dict with
      rows: 3 lists of 4 tensors (V, ...): the rows of the normalised ``T_image P T_world``;
      principal_x, principal_y: (V, ...) the image shift of each view (pixels);
      pixel_scale: (...) one pixel scale shared by the views (mean focal length);
      centre: 3 tensors (...), scale: (...): world point = centre + scale * normalised point.
    """
    tiny = _tiny(dtype)
    m = [[P[:, r, c] for c in range(4)] for r in range(3)]          # m[r][c]: (V, ...)
    depth_norm_sq = _dot3(m[2], m[2]) + tiny
    principal_x = _dot3(m[0], m[2]) / depth_norm_sq
    principal_y = _dot3(m[1], m[2]) / depth_norm_sq
    depth_norm = ops.sqrt(depth_norm_sq)
    focal_x = _norm3([m[0][c] - principal_x * m[2][c] for c in range(3)], tiny)
    focal_y = _norm3([m[1][c] - principal_y * m[2][c] for c in range(3)], tiny)
    pixel_scale = _view_mean((focal_x + focal_y) / (2.0 * depth_norm), view_mask)
    view_scale = pixel_scale * depth_norm
    rows = [[(m[0][c] - principal_x * m[2][c]) / view_scale for c in range(4)],
            [(m[1][c] - principal_y * m[2][c]) / view_scale for c in range(4)],
            [m[2][c] / depth_norm for c in range(4)]]
    centres = _camera_centres(rows, tiny)
    centre, scale = _world_normalisation(centres, rows[2][:3], tiny, view_mask)
    # Rows for the normalised point X' = (X - centre) / scale, divided by scale: entries O(1).
    world_rows = [[row[0], row[1], row[2], (_dot3(row, centre) + row[3]) / scale]
                  for row in rows]
    return {"rows": world_rows, "principal_x": principal_x, "principal_y": principal_y,
            "pixel_scale": pixel_scale, "centre": centre, "scale": scale}


def _norm3(vector, tiny):
    return ops.sqrt(_dot3(vector, vector) + tiny)


def _camera_centres(rows, tiny):
    """Camera centres ``-M^-1 p4`` of the normalised views: 3 tensors (V, ...).

    ``M^-1`` by cross products of M's rows (M's determinant is about 1 after normalisation).
    """
    cross_12, cross_20, cross_01 = (_cross3(rows[1], rows[2]), _cross3(rows[2], rows[0]),
                                    _cross3(rows[0], rows[1]))
    det = _sign_preserving_floor(_dot3(rows[0], cross_12), tiny)
    return [-(rows[0][3] * cross_12[c] + rows[1][3] * cross_20[c] + rows[2][3] * cross_01[c])
            / det for c in range(3)]


def _view_mean(values, view_mask):
    """Mean over the (masked) views, axis 0: (V, ...) -> (...)."""
    if view_mask is None:
        return ops.mean(values, axis=0)
    values = ops.where(view_mask > 0, values, 0.0)  # a masked view's value may be anything, inf too
    return ops.sum(values, axis=0) / ops.maximum(ops.sum(view_mask, axis=0), 1.0)


def _view_sum(values, view_mask):
    return ops.sum(values if view_mask is None else ops.where(view_mask > 0, values, 0.0), axis=0)


def _world_normalisation(centres, axes, tiny, view_mask=None):
    """Centre: the point closest to the (unmasked) optical axes; scale: RMS camera distance to it.

    centres, axes: 3 tensors (V, ...) each (axes are unit vectors); view_mask: None or (V, ...).
    Solves ``(sum_i (I - a_i a_i^T) + reg I) c = sum_i (I - a_i a_i^T) C_i + reg mean(C)`` in
    closed form (3 x 3 symmetric adjugate). Returns centre (3 tensors (...)) and scale (...).
    """
    num_views = (ops.cast(ops.shape(centres[0])[0], centres[0].dtype) if view_mask is None
                 else ops.sum(view_mask, axis=0))
    regulariser = AXES_REGULARISATION * num_views
    along = _dot3(axes, centres)                                      # (V, ...)
    mean_centre = [_view_mean(centres[c], view_mask) for c in range(3)]
    system = {}
    for i, j in ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)):
        system[i, j] = _view_sum(float(i == j) - axes[i] * axes[j], view_mask) + \
            (regulariser if i == j else 0.0)
        system[j, i] = system[i, j]
    rhs = [_view_sum(centres[c] - axes[c] * along, view_mask) + regulariser * mean_centre[c]
           for c in range(3)]
    cofactors = {(i, j): _cofactor3(system, i, j) for i in range(3) for j in range(3)}
    det = system[0, 0] * cofactors[0, 0] + system[0, 1] * cofactors[0, 1] + \
        system[0, 2] * cofactors[0, 2]
    det = _sign_preserving_floor(det, tiny)
    centre = [_dot3([cofactors[0, i], cofactors[1, i], cofactors[2, i]], rhs) / det
              for i in range(3)]
    offsets = [centres[c] - centre[c] for c in range(3)]
    scale = ops.sqrt(_view_mean(_dot3(offsets, offsets), view_mask) + tiny)
    return centre, scale


def _cofactor3(matrix, i, j):
    rows = [r for r in range(3) if r != i]
    cols = [c for c in range(3) if c != j]
    minor = matrix[rows[0], cols[0]] * matrix[rows[1], cols[1]] - \
        matrix[rows[0], cols[1]] * matrix[rows[1], cols[0]]
    return minor if (i + j) % 2 == 0 else -minor


def _design_columns(u, v, frame, weights):
    """The 4 columns of the normalised DLT matrix A, each (2V, ...): rows u-rows then v-rows."""
    rows = frame["rows"]
    u, v = ops.stack(u, axis=0), ops.stack(v, axis=0)
    if weights is not None:
        weights = ops.stack(weights, axis=0)
    u_n = (u - frame["principal_x"]) / frame["pixel_scale"]
    v_n = (v - frame["principal_y"]) / frame["pixel_scale"]
    columns = []
    for c in range(4):
        u_row, v_row = u_n * rows[2][c] - rows[0][c], v_n * rows[2][c] - rows[1][c]
        if weights is not None:
            u_row, v_row = weights * u_row, weights * v_row
        columns.append(ops.concatenate([u_row, v_row], axis=0))
    return columns


# The 10 unique entries of a symmetric 4 x 4 matrix, stored stacked on a leading axis.
_UPPER = [(i, j) for i in range(4) for j in range(i, 4)]
_SLOT = {**{key: slot for slot, key in enumerate(_UPPER)},
         **{(j, i): slot for slot, (i, j) in enumerate(_UPPER)}}
_DIAGONAL = [_SLOT[i, i] for i in range(4)]


def _stacked_gram(u, v, frame, weights):
    """B = A^T A of the normalised system: its 10 unique entries stacked, (10, ...).

    The pixel normalisation is folded into the rows once per sample (P's own batch shape, e.g.
    (B, 1), never per joint): ``u_n r2 - r0 = u d - o`` with ``d = r2 / s`` and
    ``o = r0 + p_x r2 / s``. Per point, B is one elementwise expression over the 10 entries
    (views unrolled, points read by strided slices: no transposed copy, no (4, 2V) matrix A
    materialised per point), which XLA compiles into a single loop over the points.
    """
    rows = frame["rows"]
    # Per sample (P's batch shape), stacked (4, V, ...); the divide keeps XLA from recomputing
    # them for every point.
    scale = frame["pixel_scale"]
    depth = ops.stack([rows[2][c] / scale for c in range(4)], axis=0)
    offset_u = ops.stack([(rows[0][c] * scale + frame["principal_x"] * rows[2][c]) / scale
                          for c in range(4)], axis=0)
    offset_v = ops.stack([(rows[1][c] * scale + frame["principal_y"] * rows[2][c]) / scale
                          for c in range(4)], axis=0)
    # Entry (i, j) of B, view by view: (u d_i - o_i)(u d_j - o_j) + (v d_i - p_i)(v d_j - p_j),
    # the per-sample factors gathered for the 10 entries (small tensors); A's columns are never
    # materialised per point (that memory traffic cost more than recomputing them).
    first, second = [i for i, _ in _UPPER], [j for _, j in _UPPER]
    factors = [ops.take(tensor, index, axis=0) for index in (first, second)
               for tensor in (depth, offset_u, offset_v)]                 # 6 x (10, V, ...)
    gram = None
    for view in range(len(u)):
        d_i, o_i, p_i, d_j, o_j, p_j = (factor[:, view] for factor in factors)
        term = (u[view] * d_i - o_i) * (u[view] * d_j - o_j) + \
            (v[view] * d_i - p_i) * (v[view] * d_j - p_j)
        if weights is not None:
            term = weights[view] * weights[view] * term
        gram = term if gram is None else gram + term
    return gram                                                        # (10, ...)


def _adjugate_terms():
    """The adjugate of a symmetric 4 x 4 matrix as 6 signed triple products per unique entry.

    adj[i, j] = (-1)^(i+j) det(minor without row j and column i); returns (signs (6, 10),
    slots (3, 6, 10)): adj[slot k] = sum_t signs[t, k] * prod_f a[slots[f, t, k]].
    """
    signs, slots = [], [[], [], []]
    for i, j in _UPPER:
        rows = [r for r in range(4) if r != j]
        cols = [c for c in range(4) if c != i]
        entry_signs, entry_slots = [], [[], [], []]
        for perm in itertools.permutations(range(3)):
            inversions = sum(perm[p] > perm[q] for p in range(3) for q in range(p + 1, 3))
            entry_signs.append((-1.0) ** (inversions + i + j))
            for f in range(3):
                entry_slots[f].append(_SLOT[rows[f], cols[perm[f]]])
        signs.append(entry_signs)
        for f in range(3):
            slots[f].append(entry_slots[f])
    transpose = lambda table: [list(column) for column in zip(*table)]
    return transpose(signs), [transpose(table) for table in slots]


_ADJ_SIGNS, _ADJ_SLOTS = _adjugate_terms()


def _stacked_adjugate(a):
    """Adjugate of symmetric 4 x 4 matrices stacked as (10, ...) -> (10, ...).

    Written on the stacked tensor (constant gathers over its leading axis) rather than as 10
    separate tensors: XLA then emits one loop for all entries instead of one kernel per entry
    (or recomputing shared terms in every consumer).
    """
    total = None
    for t in range(6):
        term = ops.take(a, _ADJ_SLOTS[0][t], axis=0) * ops.take(a, _ADJ_SLOTS[1][t], axis=0) * \
            ops.take(a, _ADJ_SLOTS[2][t], axis=0)
        sign = ops.reshape(ops.convert_to_tensor(_ADJ_SIGNS[t], a.dtype),
                           (10,) + (1,) * (len(a.shape) - 1))
        total = sign * term if total is None else total + sign * term
    return total


def _smallest_eigenvector_sii(gram, iterations, dtype):
    """Shifted inverse iterations on B = A^T A (stacked (10, ...)): 4 tensors (...), unit."""
    tiny = _tiny(dtype)
    broadcast = (1,) * (len(gram.shape) - 1)
    # Floored so that all-zero weights give the centre with zero gradients, not 0 / 0.
    trace = ops.maximum(ops.sum(ops.take(gram, _DIAGONAL, axis=0), axis=0), MIN_TRACE[dtype])
    shift = ops.reshape(ops.convert_to_tensor(
        [RELATIVE_SHIFT[dtype] if i == j else 0.0 for i, j in _UPPER], dtype), (10,) + broadcast)
    solver = _stacked_adjugate(gram / trace + shift)                   # (10, ...)
    # Start at the normalised world centre, the homogeneous (0, 0, 0, 1): next to any point
    # the cameras look at, and never orthogonal to it. The first step is then the last column
    # of the adjugate (no multiplications by the zeros).
    full = ops.reshape(ops.take(solver, [_SLOT[i, j] for i in range(4) for j in range(4)],
                                axis=0), (4, 4) + tuple(ops.shape(solver)[1:]))   # (4, 4, ...)
    x = None
    for _ in range(iterations):
        # full is symmetric: its row 3 (a contiguous slice) is its column 3.
        y = full[3] if x is None else ops.sum(full * x[None], axis=1)      # (4, ...)
        x = y * ops.rsqrt(ops.sum(y * y, axis=0) + tiny)
    return [x[c] for c in range(4)]


def _smallest_singular_vector_svd(columns):
    """keras.ops.svd of A (..., 2V, 4): its last right singular vector, 4 tensors (...)."""
    matrix = ops.moveaxis(ops.stack(columns, axis=-1), 0, -2)          # (..., 2V, 4)
    _, _, vh = ops.svd(matrix, full_matrices=False)
    return [vh[..., -1, c] for c in range(4)]


def _sign_preserving_floor(value, floor):
    """``value`` with ``|value| >= floor``, keeping its sign (0 counts as positive)."""
    return ops.where(value >= 0, ops.maximum(value, floor), ops.minimum(value, -floor))


def _dehomogenise(homogeneous, frame):
    """Normalised homogeneous point (4 tensors) -> (..., 3) world point."""
    w = _sign_preserving_floor(homogeneous[3], MIN_HOMOGENEOUS_W)
    factor = frame["scale"] / w
    return ops.stack([frame["centre"][c] + factor * homogeneous[c] for c in range(3)], axis=-1)


# --------------------------------------------------------------------------- Keras layer

@keras.saving.register_keras_serializable(package="dlt_layer")
class UndistortTriangulate(keras.layers.Layer):
    """Weightless layer: distorted 2D joints of V views -> 3D joints (undistort, then the DLT).

    call(kp2d (B, V, J, 2) distorted pixels, P (B, V, 3, 4), K (B, V, 3, 3) of the same pixels,
    dist (B, V, 6) [k1, k2, k3, p1, p2, tangential_factor], weights=None or (B, V, J),
    view_mask=None or (B, V) 0/1: the views that take part) -> (B, J, 3) world mm.
    Computes in ``precision`` ("float32" by default, whatever the model's dtype policy: the DLT
    must not run in float16).
    """

    def __init__(self, method: str = "sii", iterations: int = 2,
                 undistort_iterations: int = 6, precision: str = "float32", **kwargs):
        # No autocast: under a float16 policy, P (entries up to ~1e6) would overflow.
        kwargs.setdefault("autocast", False)
        super().__init__(**kwargs)
        if method not in METHODS:
            raise ValueError(f"UndistortTriangulate: method must be one of {METHODS}, "
                             f"got {method!r}.")
        _check_dtype(precision)
        self.method = method
        self.iterations = iterations
        self.undistort_iterations = undistort_iterations
        self.precision = precision

    def call(self, kp2d, P, K, dist, weights=None, view_mask=None):
        pinhole = undistort(kp2d, K, dist, iterations=self.undistort_iterations,
                            dtype=self.precision)                       # (B, V, J, 2)
        points = ops.transpose(pinhole, (0, 2, 1, 3))                   # (B, J, V, 2)
        if weights is not None:
            weights = ops.transpose(weights, (0, 2, 1))                 # (B, J, V)
        if view_mask is not None:
            view_mask = ops.expand_dims(view_mask, 1)                   # (B, 1, V), as P
        return triangulate(points, ops.expand_dims(P, 1), weights, method=self.method,
                           iterations=self.iterations, dtype=self.precision, view_mask=view_mask)

    def compute_output_shape(self, kp2d_shape, *args, **kwargs):
        return (kp2d_shape[0], kp2d_shape[2], 3)

    def get_config(self):
        config = super().get_config()
        config.update(method=self.method, iterations=self.iterations,
                      undistort_iterations=self.undistort_iterations, precision=self.precision)
        return config
