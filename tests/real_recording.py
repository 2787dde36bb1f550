"""The shared real recording (pose2sim's balancing trial, ../shared/real_recordings/, see its README):
its paths, its reference pelvis from the TRC in the calibration's world, and its folder or a skip
with a message when it is absent."""
import os
import pathlib

import numpy as np
import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
RECORDING = pathlib.Path(os.environ.get("REAL_RECORDINGS_DIR", REPO_ROOT.parent / "shared" / "real_recordings")
                         ) / "pose2sim_balancing"
CAMERAS = ("cam_01", "cam_02", "cam_03", "cam_04")
TRC = "pose-3d/S00_P00_T01_BalancingTrial_0-100.trc"


def folder_or_skip() -> pathlib.Path:
    """The recording's folder (read-only); the calling test skips without it."""
    if not (RECORDING / "Calib.toml").is_file():
        pytest.skip(f"the real recording is not at {RECORDING} (set REAL_RECORDINGS_DIR to the folder holding "
                    "pose2sim_balancing/ to run these tests)")
    return RECORDING


def reference_pelvis(folder: pathlib.Path) -> np.ndarray:
    """(100, 3) world mm: the midpoint of the TRC's RHip and LHip, row i = JSON / video frame i.

    The README's facts: the TRC is y-up in metres; x_world = Z_trc, y_world = X_trc, z_world = Y_trc.
    """
    lines = (folder / TRC).read_text().splitlines()
    names = lines[3].split("\t")[2::3]
    markers = np.loadtxt(folder / TRC, skiprows=5)[:, 2:].reshape(-1, len(names), 3)
    pelvis = (markers[:, names.index("RHip")] + markers[:, names.index("LHip")]) / 2
    return 1000.0 * pelvis[:, [2, 0, 1]]
