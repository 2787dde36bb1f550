"""Label files of the synthetic set, in Human3.6M's CDF format."""
from __future__ import annotations

import pathlib

import numpy as np

from common import visibility


def write_pose_cdf(path: pathlib.Path, poses: np.ndarray) -> None:
    """Write (N, 32, D) poses as the CDF variable ``Pose`` of shape (1, N, 32 D), float64."""
    from cdflib import cdfwrite

    data = np.ascontiguousarray(poses.reshape(1, len(poses), -1), np.float64)
    cdf = cdfwrite.CDF(str(path), delete=True)
    try:
        cdf.write_var({"Variable": "Pose", "Data_Type": cdfwrite.CDF.CDF_DOUBLE, "Num_Elements": 1,
                       "Rec_Vary": True, "Dim_Sizes": list(data.shape[1:])}, var_data=data)
    finally:
        cdf.close()


# beside D2_Positions: <name>.<camera>.cdf, one per camera, as the 2D labels
VISIBILITY_FOLDER = visibility.FOLDER


def write_visibility_cdf(path: pathlib.Path, visible: np.ndarray) -> None:
    """Write (N, 17) bool (1: the joint shows in the picture) as the CDF variable ``Visible`` of
    shape (1, N, 17), uint8; ``common.visibility`` reads it."""
    from cdflib import cdfwrite

    data = np.ascontiguousarray(visible.reshape(1, len(visible), -1), np.uint8)
    cdf = cdfwrite.CDF(str(path), delete=True)
    try:
        cdf.write_var({"Variable": "Visible", "Data_Type": cdfwrite.CDF.CDF_UINT1, "Num_Elements": 1,
                       "Rec_Vary": True, "Dim_Sizes": list(data.shape[1:])}, var_data=data)
    finally:
        cdf.close()
