"""Per-joint visibility: which joints each view shows, and the test errors split by it.

The synthetic set stores, beside its 2D labels, ``Visibility/<name>.<camera>.cdf`` (variable
``Visible``, (1, N, 17) uint8: 1 where the joint shows in that camera's picture, 0 where the
body itself or a prop hides it). A joint-view is *hidden* when the file says so or when the
joint lies outside the crop (off-crop), *visible* otherwise. A joint of a frame is *seen by all*
views, *partly hidden* (hidden in some views) or *fully hidden* (in every view): the split on
which the paper's claim stands, that fusion helps where a view alone cannot know.
Sequences without the file (the real Human3.6M) have no split: NaN.
"""
from __future__ import annotations

import os

import numpy as np

FOLDER = "Visibility"
GROUPS_3D = ("seen_by_all", "partly_hidden", "fully_hidden")


def visibility_path(d2_path: str) -> str:
    """The visibility file beside a 2D label file (``.../D2_Positions/X.cam.cdf`` -> ``.../Visibility/X.cam.cdf``)."""
    folder, name = os.path.split(d2_path)
    return os.path.join(os.path.dirname(folder), FOLDER, name)


def read_visibility(sequence, frames: np.ndarray, camera_ids) -> np.ndarray:
    """(T, V, 17) float: 1 visible, 0 hidden, NaN where the sequence has no visibility files."""
    import cdflib
    views = []
    for camera in camera_ids:
        path = visibility_path(sequence.d2_paths[camera])
        if not os.path.isfile(path):
            return np.full((len(frames), len(camera_ids), 17), np.nan)
        visible = np.asarray(cdflib.CDF(path).varget("Visible"), np.float64).reshape(-1, 17)
        if len(visible) <= int(frames[-1]):
            raise ValueError(f"{path} holds {len(visible)} frames, fewer than the {int(frames[-1]) + 1} "
                             "its sequence's labels need: regenerate the synthetic set.")
        views.append(visible[frames])
    return np.stack(views, axis=1)


def hidden_joint_views(visible: np.ndarray, kp2d_true_crop: np.ndarray, image_size: int) -> np.ndarray:
    """(N, V, J) bool: hidden in the picture (``visible`` 0) or outside the crop (``kp2d_true_crop``
    (N, V, J, 2) crop px, pixel centres at integers, the crop spanning [-0.5, S - 0.5])."""
    outside = ((kp2d_true_crop < -0.5) | (kp2d_true_crop > image_size - 0.5)).any(axis=-1)
    return (visible == 0) | outside


def breakdown(visible, kp2d_pred, kp2d_true, kp3d_pred, kp3d_true, image_size: int) -> dict:
    """The errors split by visibility (NaN where a group is empty or ``visible`` is unknown).

    visible (N, V, J) (``read_visibility``); kp2d_* (N, V, J, 2) crop px; kp3d_* (N, J, 3) mm.
    Returns {"error_2d_visible_px", "error_2d_hidden_px", "hidden_fraction" (of joint-views),
    "mpjpe_<group>_mm" and "fraction_<group>" for each of ``GROUPS_3D``}: means over joints.
    """
    if np.isnan(visible).any():
        nan = float("nan")
        return {"error_2d_visible_px": nan, "error_2d_hidden_px": nan, "hidden_fraction": nan,
                **{f"{key}_{group}{unit}": nan for group in GROUPS_3D
                   for key, unit in (("mpjpe", "_mm"), ("fraction", ""))}}
    hidden = hidden_joint_views(visible, kp2d_true, image_size)
    error_2d = np.linalg.norm(kp2d_pred - kp2d_true, axis=-1)
    error_3d = np.linalg.norm(kp3d_pred - kp3d_true, axis=-1)
    hidden_views = hidden.sum(axis=1)                          # (N, J)
    groups = {"seen_by_all": hidden_views == 0, "fully_hidden": hidden_views == hidden.shape[1]}
    groups["partly_hidden"] = ~groups["seen_by_all"] & ~groups["fully_hidden"]
    result = {"error_2d_visible_px": _mean(error_2d[~hidden]), "error_2d_hidden_px": _mean(error_2d[hidden]),
              "hidden_fraction": float(hidden.mean())}
    for group in GROUPS_3D:
        result[f"mpjpe_{group}_mm"] = _mean(error_3d[groups[group]])
        result[f"fraction_{group}"] = float(groups[group].mean())
    return result


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if values.size else float("nan")


def format_lines(split: dict) -> list:
    """The split as lines under the test table (nothing when unknown)."""
    if np.isnan(split["hidden_fraction"]):
        return []
    return [f"By visibility: 2D crop px {split['error_2d_visible_px']:.2f} on visible joint-views, "
            f"{split['error_2d_hidden_px']:.2f} on hidden ones ({100 * split['hidden_fraction']:.0f}% hidden: "
            "self-occlusion, props, off-crop)",
            "  MPJPE of joints " + ", ".join(
                f"{group.replace('_', ' ')} {split[f'mpjpe_{group}_mm']:.1f} mm ({100 * split[f'fraction_{group}']:.0f}%)"
                for group in GROUPS_3D)]
