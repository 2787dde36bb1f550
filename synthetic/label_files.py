"""Label files of the synthetic set, in Human3.6M's CDF format."""
from __future__ import annotations

import pathlib

import numpy as np

from common import visibility

# beside D2_Positions: <name>.<camera>.cdf, one per camera, as the 2D labels
VISIBILITY_FOLDER = visibility.FOLDER


def write_pose_cdf(path: pathlib.Path, poses: np.ndarray) -> None:
    """Write (N, 32, D) poses as the CDF variable ``Pose`` of shape (1, N, 32 D), float64."""
    _write_cdf(path, "Pose", np.ascontiguousarray(poses.reshape(1, len(poses), -1), np.float64), "CDF_DOUBLE")


def write_visibility_cdf(path: pathlib.Path, visible: np.ndarray) -> None:
    """Write (N, 17) bool (1: the joint shows in the picture) as the CDF variable ``Visible`` of
    shape (1, N, 17), uint8; ``common.visibility`` reads it."""
    _write_cdf(path, "Visible", np.ascontiguousarray(visible.reshape(1, len(visible), -1), np.uint8), "CDF_UINT1")


def _write_cdf(path: pathlib.Path, variable: str, data: np.ndarray, data_type: str) -> None:
    """One record-varying CDF variable holding ``data`` (1, N, C) of the CDF type named ``data_type``."""
    from cdflib import cdfwrite

    cdf = cdfwrite.CDF(str(path), delete=True)
    try:
        cdf.write_var({"Variable": variable, "Data_Type": getattr(cdfwrite.CDF, data_type), "Num_Elements": 1,
                       "Rec_Vary": True, "Dim_Sizes": list(data.shape[1:])}, var_data=data)
    finally:
        cdf.close()
