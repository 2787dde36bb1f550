"""Real files for the tests: mp4 videos written by OpenCV, CDF labels written by cdflib, and the
damage that real downloads show (a video cut short after its header, a frame broken in the middle)."""
import dataclasses
import os
import struct

import cdflib
import cv2
import numpy as np


def write_pose_cdf(path, pose, variable="Pose"):
    """A real CDF file holding ``pose`` as one record, as the data set stores it."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    writer = cdflib.cdfwrite.CDF(str(path), cdf_spec={"Majority": "row_major"}, delete=True)
    writer.write_var({"Variable": variable, "Data_Type": cdflib.cdfwrite.CDF.CDF_DOUBLE,
                      "Num_Elements": 1, "Rec_Vary": True, "Dim_Sizes": list(pose.shape[1:])},
                     var_attrs={}, var_data=pose)
    writer.close()


def with_video(sequence, camera_id, path):
    """``sequence`` (an ``h36m_utils.Sequence``) with the video of ``camera_id`` replaced by ``path``."""
    return dataclasses.replace(sequence, videos={**sequence.videos, camera_id: str(path)})


def write_frames(path, frames):
    """An mp4 (MPEG-4 part 2, 50 fps) of the (H, W, 3) uint8 BGR ``frames``."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 50, (width, height))
    for frame in frames:
        writer.write(frame)
    writer.release()


def write_video(path, num_frames, size=32):
    """An mp4 of ``num_frames`` grey size x size frames, each a different grey."""
    write_frames(path, [np.full((size, size, 3), index * 5 % 255, np.uint8) for index in range(num_frames)])


# --------------------------------------------------------------------------- damaged videos
# OpenCV writes an mp4 as [ftyp][free][mdat: the frames][moov: the header with the sample table].

def _top_level_boxes(data: bytes) -> dict:
    """{box type: (start, size)} of an mp4's top-level boxes."""
    boxes, start = {}, 0
    while start < len(data):
        size, kind = struct.unpack_from(">I4s", data, start)
        boxes[kind] = (start, size)
        start += size
    return boxes


def _table_start(moov: bytes, kind: bytes) -> int:
    """Where the entry count of the sample-table box ``kind`` in ``moov`` is (after type and flags)."""
    return moov.index(kind) + 8


def _uint32_table(moov: bytes, kind: bytes, skip: int = 0, width: int = 1) -> list:
    """The entries of a sample-table box: ``skip`` header fields, then a count and the entries."""
    start = _table_start(moov, kind) + 4 * skip
    count = struct.unpack_from(">I", moov, start)[0]
    return list(struct.unpack_from(f">{count * width}I", moov, start + 4))


def frame_offsets(data: bytes) -> list:
    """File offset of every frame of a one-track mp4 (``data``: the file's bytes), with its end."""
    start, size = _top_level_boxes(data)[b"moov"]
    moov = data[start:start + size]
    sizes = _uint32_table(moov, b"stsz", skip=1)  # skip the common sample size (0: sizes are listed)
    runs = _uint32_table(moov, b"stsc", width=3)  # (first chunk, samples per chunk, description)
    offsets = []
    for chunk, chunk_offset in enumerate(_uint32_table(moov, b"stco"), start=1):
        per_chunk = [count for first, count in zip(runs[::3], runs[1::3]) if first <= chunk][-1]
        for _ in range(per_chunk):
            offsets.append(chunk_offset)
            chunk_offset += sizes[len(offsets) - 1]
    return offsets + [offsets[-1] + sizes[-1]]


def cut_after_header(path, keep_frames: int) -> None:
    """Move the header (moov) of an OpenCV mp4 before its frames, then cut the file after frame
    ``keep_frames - 1``: the container still lists every frame, but only ``keep_frames`` decode
    (a download or an extraction cut short)."""
    data = open(path, "rb").read()
    boxes = _top_level_boxes(data)
    (mdat, _), (moov_start, moov_size) = boxes[b"mdat"], boxes[b"moov"]
    assert moov_start + moov_size == len(data), "expected the header after the frames"
    moov = bytearray(data[moov_start:])
    chunks = _table_start(moov, b"stco")
    for entry in range(struct.unpack_from(">I", moov, chunks)[0]):  # the frames move by the header's size
        at = chunks + 4 + 4 * entry
        struct.pack_into(">I", moov, at, struct.unpack_from(">I", moov, at)[0] + moov_size)
    moved = data[:mdat] + bytes(moov) + data[mdat:moov_start]
    with open(path, "wb") as handle:
        handle.write(moved[:frame_offsets(moved)[keep_frames]])


def break_frame(path, index: int) -> None:
    """Zero the bytes of frame ``index`` (same file size): it no longer decodes, the others do."""
    data = bytearray(open(path, "rb").read())
    start, end = frame_offsets(bytes(data))[index:index + 2]
    data[start:end] = bytes(end - start)
    with open(path, "wb") as handle:
        handle.write(bytes(data))
