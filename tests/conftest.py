"""Shared fixtures: the real Human3.6M sample (skipped when absent) and one small synthetic set."""
import os
import pathlib

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")
REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]

SAMPLE_DIR = pathlib.Path(os.environ.get("H36M_SAMPLE_DIR", REPO_ROOT.parent / "shared" / "h36m_sample"))
CALIBRATION_SAMPLES_DIR = pathlib.Path(os.environ.get(
    "CALIBRATION_SAMPLES_DIR", REPO_ROOT.parent / "shared" / "calibration_samples"))


@pytest.fixture(scope="session", autouse=True)
def crop_cache_dir(tmp_path_factory):
    """Crop caches of the whole session go to one temporary folder, never into the repo."""
    folder = tmp_path_factory.mktemp("crop_cache")
    os.environ["CROP_CACHE_DIR"] = str(folder)
    return folder


@pytest.fixture(scope="session")
def h36m_sample_dir() -> pathlib.Path:
    """The tiny real Human3.6M sample (read-only) beside the repo; tests using it skip without it."""
    if not (SAMPLE_DIR / "camera-parameters.json").is_file():
        pytest.skip(f"real Human3.6M sample not found at {SAMPLE_DIR} "
                    "(set H36M_SAMPLE_DIR to its folder to run these tests)")
    return SAMPLE_DIR


@pytest.fixture(scope="session")
def calibration_samples_dir() -> pathlib.Path:
    """Real calibration files of other people's rigs (read-only); tests using them skip without them."""
    if not (CALIBRATION_SAMPLES_DIR / "pose2sim" / "Calib.toml").is_file():
        pytest.skip(f"calibration samples not found at {CALIBRATION_SAMPLES_DIR} "
                    "(set CALIBRATION_SAMPLES_DIR to its folder to run these tests)")
    return CALIBRATION_SAMPLES_DIR


@pytest.fixture(scope="session")
def synthetic_dataset(tmp_path_factory):
    """A small synthetic Human3.6M-layout set (S1 for training, S11 held out), with the quirks.

    Generated once per test session; tests must treat it as read-only.
    """
    from synthetic import synthetic_h36m
    out_dir = tmp_path_factory.mktemp("synthetic_h36m")
    return synthetic_h36m.generate_dataset(out_dir, subjects=("S1", "S11"), frames=40, size=256,
                                           seed=0, progress=False)
