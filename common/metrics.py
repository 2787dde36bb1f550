"""Pose metrics on numpy arrays: MPJPE (absolute, pelvis-relative, Procrustes), 2D error, per-action means."""
from __future__ import annotations

import numpy as np

from common.skeleton import PELVIS


def mpjpe(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Mean per-joint position error, ``(..., J, 3)`` -> ``(...,)`` in the inputs' unit (mm)."""
    return np.linalg.norm(pred - gt, axis=-1).mean(axis=-1)


def mpjpe_relative(pred: np.ndarray, gt: np.ndarray, root: int = PELVIS) -> np.ndarray:
    """MPJPE after aligning each pose's root joint (pelvis): ``(..., J, 3)`` -> ``(...,)``."""
    return mpjpe(pred - pred[..., root:root + 1, :], gt - gt[..., root:root + 1, :])


def procrustes_align(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """``pred (..., J, 3)`` moved by the similarity (rotation, scale, shift) that best fits ``gt``."""
    mu_pred, mu_gt = pred.mean(axis=-2, keepdims=True), gt.mean(axis=-2, keepdims=True)
    x, y = pred - mu_pred, gt - mu_gt
    u, s, vt = np.linalg.svd(np.swapaxes(x, -1, -2) @ y)
    # Flip the last axis where the best orthogonal map is a reflection.
    sign = np.sign(np.linalg.det(u @ vt))
    s[..., -1] *= sign
    u[..., :, -1] *= sign[..., None]
    rotation = u @ vt
    scale = s.sum(axis=-1) / np.maximum((x ** 2).sum(axis=(-1, -2)), 1e-12)
    return scale[..., None, None] * (x @ rotation) + mu_gt


def p_mpjpe(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """MPJPE after Procrustes alignment with scale: ``(..., J, 3)`` -> ``(...,)``."""
    return mpjpe(procrustes_align(pred, gt), gt)


def error_2d(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Mean 2D joint error in pixels: ``(..., J, 2)`` -> ``(...,)``."""
    return np.linalg.norm(pred - gt, axis=-1).mean(axis=-1)


def summarize_per_action(actions, per_sample: dict) -> tuple[dict, dict]:
    """Average per action, then over actions, as papers report.

    actions: (N,) action names; per_sample: {metric: (N,) values}. Returns
    ``({action: {metric: mean}}, {metric: mean over actions})``.
    """
    actions = np.asarray(actions)
    per_action = {action: {name: float(np.mean(np.asarray(values)[actions == action]))
                           for name, values in per_sample.items()}
                  for action in sorted(set(actions.tolist()))}
    averages = {name: float(np.mean([row[name] for row in per_action.values()]))
                for name in per_sample}
    return per_action, averages
