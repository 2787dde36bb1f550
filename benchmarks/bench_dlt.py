"""Speed and accuracy of the DLT solvers, side by side in one run, as one table.

    python benchmarks/bench_dlt.py [--batches 256 16 64 1024 4096] [--repeats 15]
    KERAS_BACKEND=jax python benchmarks/bench_dlt.py      # the same table through JAX (no TensorFlow)

Scene: 4 cameras in a Human3.6M-like ring (5 m away, f = 1145 px), 17 joints per sample, 2 px
of Gaussian noise on the pinhole 2D points; float32 inputs in the form the model uses: points
(B, J, V, 2) and P per sample, (B, 1, V, 3, 4), broadcast over the joints (not materialised per
point). The first batch is the paper's setting (256 x 17 points). Solvers, each compiled in the
backend's best form:
  SII (2 / 3 iterations): dlt_layer.triangulate, jitted (TensorFlow: tf.function with XLA;
    JAX: jax.jit);
  keras.ops.svd: dlt_layer.triangulate(method="svd"), the SVD of the same normalised system,
    jitted (TensorFlow: the faster of a plain tf.function and an XLA one is kept);
  numpy.linalg.svd: float64 batched SVD of the plain, unnormalised system (numpy's best form, CPU).
Time: median over repeats of one call on the whole batch, the result synchronised before the
timer stops (TensorFlow: copied to numpy; JAX: block_until_ready); the solvers take turns in 3
rounds, each turn after 0.1 s of untimed calls (warm-up, compilation and the previous solver's
spinning threads excluded).
Accuracy: max / mean distance in mm to the float64 SVD of the same normalised system
(dlt_layer.triangulate(method="svd", dtype="float64")): the solver's own error. For the plain
numpy row it is the effect of the normalisation under noise, which the last column (mean error
against the true points) shows to be no loss.
"""
import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# JAX computes float64 only when enabled; the reference needs it, the solvers get float32 inputs.
os.environ.setdefault("JAX_ENABLE_X64", "1")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import dlt_layer  # noqa: E402
from benchmarks.backend_info import describe_backend  # noqa: E402

BACKEND = keras.backend.backend()
NUM_JOINTS, NUM_VIEWS, NOISE_PX = 17, 4, 2.0


def ring_cameras(num_views=NUM_VIEWS, distance=5000.0, focal=1145.0):
    """(V, 3, 4) pinhole P of cameras on a ring at 1.5 m height, all looking at (0, 0, 1 m)."""
    target = np.array([0.0, 0.0, 1000.0])
    cameras = []
    for view in range(num_views):
        azimuth = np.pi / 4 + 2 * np.pi * view / num_views
        centre = np.array([distance * np.cos(azimuth), distance * np.sin(azimuth), 1500.0])
        forward = (target - centre) / np.linalg.norm(target - centre)
        right = np.cross(forward, [0.0, 0.0, 1.0])
        right /= np.linalg.norm(right)
        R = np.stack([right, np.cross(forward, right), forward])
        K = np.array([[focal, 0, 500.0], [0, focal, 500.0], [0, 0, 1]])
        cameras.append(K @ np.concatenate([R, -R @ centre[:, None]], axis=1))
    return np.stack(cameras)


def make_batch(rng, batch, P):
    """Noisy points (B, J, V, 2), P (B, 1, V, 3, 4) and the true X (B, J, 3), float64."""
    X = rng.uniform([-800, -800, 0], [800, 800, 1900], (batch, NUM_JOINTS, 3))
    homogeneous = np.einsum("vij,bnj->bnvi", P, np.concatenate([X, np.ones(X.shape[:2] + (1,))], -1))
    points = homogeneous[..., :2] / homogeneous[..., 2:]
    points += rng.normal(0, NOISE_PX, points.shape)
    return points, np.broadcast_to(P, (batch, 1) + P.shape).copy(), X


def numpy_svd_dlt(points, P):
    """Float64 numpy SVD of the plain system. points (B, J, V, 2), P (B, 1, V, 3, 4) -> (B, J, 3)."""
    rows = np.concatenate([points[..., 0, None] * P[..., 2, :] - P[..., 0, :],
                           points[..., 1, None] * P[..., 2, :] - P[..., 1, :]], axis=-2)
    solution = np.linalg.svd(rows)[2][..., -1, :]
    return solution[..., :3] / solution[..., 3:]


def median_ms(functions, repeats, rounds=3, settle_s=0.1):
    """{name: median ms per call}. The functions take turns in ``rounds`` rounds, so that load
    from other processes hits all of them alike; in each turn untimed calls for at least
    ``settle_s`` seconds first absorb the switch (caches, and the previous solver's thread
    pools, e.g. numpy's BLAS threads, which keep spinning for a while after it returns and
    otherwise slow down whichever solver comes next), then about repeats / rounds calls are
    timed. Compilation happens in the untimed calls."""
    times = {name: [] for name in functions}
    for _ in range(rounds):
        for name, function in functions.items():
            settled = time.perf_counter() + settle_s
            function()
            while time.perf_counter() < settled:
                function()
            for _ in range(max(1, repeats // rounds)):
                start = time.perf_counter()
                function()
                times[name].append(time.perf_counter() - start)
    return {name: 1000 * float(np.median(values)) for name, values in times.items()}


def compiled_solver(method, iterations, xla=True):
    """callable(points, P) -> the solver's (B, J, 3) estimate, computed and synchronised."""
    def solve(points, P):
        return dlt_layer.triangulate(points, P, method=method, iterations=iterations)
    if BACKEND == "jax":
        import jax
        jitted = jax.jit(solve)
        return lambda points, P: jitted(points, P).block_until_ready()
    import tensorflow as tf
    tf.get_logger().setLevel("ERROR")  # one function per batch size is by design, not a retracing bug
    function = tf.function(solve, jit_compile=xla)
    return lambda points, P: function(points, P).numpy()


def solvers():
    """(name, {form: callable(points float32, P float32) -> estimate}) in table order."""
    jit = "jax.jit" if BACKEND == "jax" else "XLA"
    svd_forms = {jit: compiled_solver("svd", 2)}
    if BACKEND == "tensorflow":
        svd_forms["tf.function"] = compiled_solver("svd", 2, xla=False)
    return [
        ("SII, 2 iterations", {jit: compiled_solver("sii", 2)}),
        ("SII, 3 iterations", {jit: compiled_solver("sii", 3)}),
        ("keras.ops.svd", svd_forms),
    ]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[256, 16, 64, 1024, 4096],
                        help="samples of 17 joints per call; the paper's setting (256) first")
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    cameras = ring_cameras()
    header = (f"{'batch x joints':>14} | {'solver':<30} | {'form':<11} | {'time ms':>8} | "
              f"{'svd / this':>13} | {'max mm':>8} | {'mean mm':>8} | {'truth mm':>10}")
    print(f"DLT solvers, {NUM_VIEWS} views, {NOISE_PX:g} px noise, float32 inputs; "
          f"points (B, {NUM_JOINTS}, {NUM_VIEWS}, 2), P (B, 1, {NUM_VIEWS}, 3, 4); "
          f"max/mean mm vs float64 SVD of the same system, mean mm vs truth; {describe_backend()}")
    print(header)
    print("-" * len(header))
    for batch in args.batches:
        points, P, truth = make_batch(rng, batch, cameras)
        points32 = keras.ops.convert_to_tensor(points, "float32")
        P32 = keras.ops.convert_to_tensor(P, "float32")
        reference = keras.ops.convert_to_numpy(dlt_layer.triangulate(points, P, method="svd", dtype="float64"))
        if reference.dtype != np.float64:
            raise RuntimeError(f"The float64 reference came back as {reference.dtype}: with JAX, "
                               "set JAX_ENABLE_X64=1 (this script does unless it is set otherwise).")
        # One compiled function per solver and form for this shape, used for both the timing
        # and the accuracy (re-creating them would retrace and recompile).
        table = solvers()
        candidates = {(name, form): function for name, forms in table
                      for form, function in forms.items()}
        timed = median_ms({key: (lambda f=f: f(points32, P32)) for key, f in candidates.items()}
                          | {("numpy", "numpy"): lambda: numpy_svd_dlt(points, P)}, args.repeats)
        rows = []
        for name, forms in table:
            form = min(forms, key=lambda form: timed[name, form])
            estimate = keras.ops.convert_to_numpy(forms[form](points32, P32))
            if estimate.dtype != np.float32:
                raise RuntimeError(f"{name} computed in {estimate.dtype}, not float32: the timing would mislead.")
            estimate = estimate.astype(np.float64)
            rows.append((name, form, timed[name, form], estimate))
        rows.append(("numpy.linalg.svd f64, plain", "numpy", timed["numpy", "numpy"],
                     numpy_svd_dlt(points, P)))
        svd_ms = rows[2][2]
        for name, form, ms, estimate in rows:
            errors = np.linalg.norm(estimate - reference, axis=-1)
            truth_mm = np.linalg.norm(estimate - truth, axis=-1).mean()
            print(f"{batch:>6} x {NUM_JOINTS:<5} | {name:<30} | {form:<11} | {ms:>8.3f} | "
                  f"{svd_ms / ms:>12.1f}x | {errors.max():>8.4f} | {errors.mean():>8.4f} | "
                  f"{truth_mm:>10.3f}")
        print("-" * len(header))


if __name__ == "__main__":
    main()
