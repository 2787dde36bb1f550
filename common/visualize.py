"""The two pictures of a test run: 2D joints over the crops, and 3D skeletons.

Pure matplotlib on numpy arrays (no TensorFlow): predicted joints are drawn in solid lines,
ground truth in dashed lines; the subject's left side is blue, the right side red, the
centre line green (``skeleton.LEFT_RIGHT_17``).
"""
from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)
import numpy as np  # noqa: E402

import h36m_utils  # noqa: E402
from common import skeleton

LEFT_COLOR, RIGHT_COLOR, CENTER_COLOR = "tab:blue", "tab:red", "tab:green"
TRUE_STYLE = {"linestyle": "--", "linewidth": 1.0, "alpha": 0.9}
PRED_STYLE = {"linestyle": "-", "linewidth": 2.0}


def edge_color(parent: int, child: int) -> str:
    """Colour of the bone (parent, child): by the side of the body it belongs to."""
    if child in skeleton.LEFT_JOINTS_17 or parent in skeleton.LEFT_JOINTS_17:
        return LEFT_COLOR
    if child in skeleton.RIGHT_JOINTS_17 or parent in skeleton.RIGHT_JOINTS_17:
        return RIGHT_COLOR
    return CENTER_COLOR


def _check(name: str, array: np.ndarray, trailing: tuple[int, ...]) -> np.ndarray:
    array = np.asarray(array)
    if array.shape[-len(trailing):] != trailing:
        raise ValueError(f"{name} has shape {array.shape}; expected (..., "
                         f"{', '.join(map(str, trailing))})")
    return array


def _draw_skeleton_2d(axis, joints: np.ndarray, style: dict) -> None:
    """joints: (J, 2) pixels."""
    for parent, child in skeleton.EDGES_17:
        axis.plot(joints[[parent, child], 0], joints[[parent, child], 1],
                  color=edge_color(parent, child), **style)


def _draw_skeleton_3d(axis, joints: np.ndarray, style: dict) -> None:
    """joints: (J, 3) mm."""
    for parent, child in skeleton.EDGES_17:
        axis.plot(joints[[parent, child], 0], joints[[parent, child], 1],
                  joints[[parent, child], 2], color=edge_color(parent, child), **style)


def plot_keypoints_2d(images: np.ndarray, predicted: np.ndarray, true: np.ndarray,
                      path: str, titles: list[str] | None = None) -> str:
    """Draw predicted vs true 2D joints over every view of a few frames; save to ``path``.

    images: (F, V, S, S, 3) uint8 RGB crops; predicted, true: (F, V, 17, 2) crop pixels;
    titles: optional F row labels (e.g. "S11 Walking 1 #120"). One row per frame, one
    column per view. Returns ``path``.
    """
    images = _check("images", images, (3,))
    predicted = _check("predicted", predicted, (len(skeleton.J17), 2))
    true = _check("true", true, (len(skeleton.J17), 2))
    if not images.shape[:2] == predicted.shape[:2] == true.shape[:2]:
        raise ValueError(f"frames/views differ: images {images.shape}, predicted "
                         f"{predicted.shape}, true {true.shape}")
    frames, views = images.shape[:2]
    figure, axes = plt.subplots(frames, views, figsize=(3 * views, 3 * frames), squeeze=False)
    for f in range(frames):
        for v in range(views):
            axis = axes[f, v]
            axis.imshow(images[f, v])
            _draw_skeleton_2d(axis, true[f, v], TRUE_STYLE)
            _draw_skeleton_2d(axis, predicted[f, v], PRED_STYLE)
            axis.set_xlim(-0.5, images.shape[3] - 0.5)
            axis.set_ylim(images.shape[2] - 0.5, -0.5)  # image rows grow downwards
            axis.set_xticks([])
            axis.set_yticks([])
            if f == 0:
                axis.set_title(f"camera {h36m_utils.CAMERA_IDS[v]}" if views == 4 else f"view {v}",
                               fontsize=9)
        if titles is not None:
            axes[f, 0].set_ylabel(titles[f], fontsize=8)
    figure.suptitle("2D joints: predicted (solid) vs true (dashed)", fontsize=11)
    return _save(figure, path)


def set_equal_axes_3d(axis, points: np.ndarray) -> None:
    """Give the 3D axis one scale on x, y and z around ``points`` (N, 3), so bones keep their length."""
    low, high = points.min(axis=0), points.max(axis=0)
    # 5% margin, so the outermost joints are not drawn on the box edge.
    center, radius = (low + high) / 2, max(float((high - low).max()) / 2, 1.0) * 1.05
    axis.set_xlim(center[0] - radius, center[0] + radius)
    axis.set_ylim(center[1] - radius, center[1] + radius)
    axis.set_zlim(center[2] - radius, center[2] + radius)
    axis.set_box_aspect((1, 1, 1))


def plot_skeletons_3d(predicted: np.ndarray, true: np.ndarray, path: str,
                      titles: list[str] | None = None) -> str:
    """Draw predicted vs true 3D skeletons (world mm, equal axes), one panel per frame.

    predicted, true: (F, 17, 3) world mm; titles: optional F panel titles. Returns ``path``.
    """
    predicted = _check("predicted", predicted, (len(skeleton.J17), 3))
    true = _check("true", true, (len(skeleton.J17), 3))
    if predicted.shape != true.shape:
        raise ValueError(f"predicted {predicted.shape} and true {true.shape} differ")
    frames = predicted.shape[0]
    figure = plt.figure(figsize=(4.5 * frames, 5.2))
    for f in range(frames):
        axis = figure.add_subplot(1, frames, f + 1, projection="3d")
        _draw_skeleton_3d(axis, true[f], TRUE_STYLE)
        _draw_skeleton_3d(axis, predicted[f], PRED_STYLE)
        set_equal_axes_3d(axis, np.concatenate([predicted[f], true[f]]))
        axis.set_xlabel("x (mm)", fontsize=7)
        axis.set_ylabel("y (mm)", fontsize=7)
        axis.set_zlabel("z (mm)", fontsize=7)
        axis.tick_params(labelsize=6)
        error = np.linalg.norm(predicted[f] - true[f], axis=-1).mean()
        label = f"{titles[f]}\n" if titles is not None else ""
        axis.set_title(f"{label}MPJPE {error:.1f} mm", fontsize=9)
    figure.suptitle("3D joints: predicted (solid) vs true (dashed)", fontsize=11)
    figure.subplots_adjust(left=0.0, right=0.96, bottom=0.04, top=0.84, wspace=0.15)
    return _save(figure, path, tight=False)  # tight_layout mis-sizes 3D axes


def _save(figure, path: str, tight: bool = True) -> str:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if tight:
        figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)
    return path
