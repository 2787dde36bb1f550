"""common.visibility: the test errors split by per-joint visibility, counted independently."""
import numpy as np
import pytest

from common import visibility

S = 128


def test_breakdown_counts_hidden_and_off_crop_joint_views_and_groups_joints_by_views():
    """2 frames, 2 views, 3 joints: errors chosen per joint-view, the split computed by hand."""
    visible = np.ones((2, 2, 3))
    visible[0, 0, 1] = 0                      # frame 0, joint 1 hidden in view 0: partly hidden
    visible[1, :, 2] = 0                      # frame 1, joint 2 hidden in both views: fully hidden
    kp2d_true = np.full((2, 2, 3, 2), 50.0)
    kp2d_true[1, 1, 0] = (S + 3, 50.0)        # frame 1, joint 0 off the crop in view 1: partly hidden
    error_2d = np.arange(12, dtype=float).reshape(2, 2, 3) + 1
    kp2d_pred = kp2d_true + np.stack([error_2d, np.zeros_like(error_2d)], -1)
    kp3d_true = np.zeros((2, 3, 3))
    error_3d = np.array([[10.0, 20, 30], [40, 50, 60]])
    kp3d_pred = kp3d_true + np.stack([np.zeros_like(error_3d), error_3d, np.zeros_like(error_3d)], -1)
    split = visibility.breakdown(visible, kp2d_pred, kp2d_true, kp3d_pred, kp3d_true, S)
    hidden = [(0, 0, 1), (1, 0, 2), (1, 1, 2), (1, 1, 0)]
    hidden_errors = [error_2d[h] for h in hidden]
    assert split["hidden_fraction"] == pytest.approx(4 / 12)
    assert split["error_2d_hidden_px"] == pytest.approx(np.mean(hidden_errors))
    assert split["error_2d_visible_px"] == pytest.approx((error_2d.sum() - sum(hidden_errors)) / 8)
    assert split["mpjpe_seen_by_all_mm"] == pytest.approx(np.mean([10, 30, 50]))
    assert split["mpjpe_partly_hidden_mm"] == pytest.approx(np.mean([20, 40]))
    assert split["mpjpe_fully_hidden_mm"] == pytest.approx(60)
    assert split["fraction_fully_hidden"] == pytest.approx(1 / 6)
    lines = visibility.format_lines(split)
    assert "33% hidden" in lines[0] and "fully hidden 60.0 mm (17%)" in lines[1]


def test_unknown_visibility_gives_no_split():
    split = visibility.breakdown(np.full((1, 2, 3), np.nan), np.zeros((1, 2, 3, 2)), np.zeros((1, 2, 3, 2)),
                                 np.zeros((1, 3, 3)), np.zeros((1, 3, 3)), S)
    assert all(np.isnan(value) for value in split.values())
    assert visibility.format_lines(split) == []


def test_visibility_path_sits_beside_the_2d_labels():
    assert visibility.visibility_path("/d/Labels/S1/MyPoseFeatures/D2_Positions/Walking 1.54138969.cdf") == \
        "/d/Labels/S1/MyPoseFeatures/Visibility/Walking 1.54138969.cdf"
