"""Videos with OpenCV: open with one decoding thread, stream chosen frames forward, count frames; write mp4.

Every module that reads video frames (the crop cache, the root finder, predict) goes through here,
and every one that writes a video (the synthetic set, predict's outputs) opens it here.
Frames are (H, W, 3) uint8 BGR, as OpenCV decodes and encodes them.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence as SequenceOf

import cv2
import numpy as np


def open_video(path) -> cv2.VideoCapture:
    """``cv2.VideoCapture`` of ``path`` whose decoder runs on ONE thread.

    Several sequences are cached at once, each from its own thread, which is where the
    parallelism comes from; FFmpeg's default of one decoding thread per core in EVERY open
    video would oversubscribe the cores. The thread count only takes effect when passed at
    open time; an OpenCV without ``CAP_PROP_N_THREADS`` falls back to its default.
    """
    if hasattr(cv2, "CAP_PROP_N_THREADS"):
        capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, 1])
        if capture.isOpened():
            return capture
        capture.release()
    return cv2.VideoCapture(str(path))


def stream_frames(path, frame_indices: SequenceOf[int]) -> Iterator[np.ndarray]:
    """Yield the (H, W, 3) uint8 BGR frames at the increasing 0-based ``frame_indices``.

    The video is opened once and read forward: ``grab()`` for every frame, ``retrieve()`` only
    for the wanted ones. Every frame is decoded into the SAME array (copy it to keep it). A
    video that cannot be opened or ends early raises ``ValueError`` naming the file.
    """
    capture = open_video(path)
    try:
        if not capture.isOpened():
            raise ValueError(f"Cannot open video {path}: the file is missing, corrupt or not a "
                             "video OpenCV can decode. Re-download or regenerate it.")
        position, frame = 0, None  # how many frames grab() has returned so far; the frame buffer
        for index in frame_indices:
            while position <= index:
                if not capture.grab():
                    raise ValueError(
                        f"Video {path} is truncated or corrupt: it ended after {position} frames, but "
                        f"frame {index} is needed. Re-download the file, or rebuild the sequence index "
                        "(find_sequences) so that its frame count matches the videos.")
                position += 1
            ok, frame = capture.retrieve(frame)
            if not ok or frame is None:
                raise ValueError(f"Video {path}: frame {index} could not be decoded (corrupt file).")
            yield frame
    finally:
        capture.release()


@dataclasses.dataclass(frozen=True)
class VideoProperties:
    """What a video's container says: frame_count, width and height (px), fps."""

    frame_count: int
    width: int
    height: int
    fps: float


def video_properties(path) -> VideoProperties:
    """The container's frame count, frame size and rate; ValueError naming the file if OpenCV cannot open it."""
    capture = open_video(path)
    try:
        if not capture.isOpened():
            raise ValueError(f"Cannot open video {path}: the file is missing, corrupt or not a video OpenCV "
                             "can decode.")
        return VideoProperties(frame_count=int(capture.get(cv2.CAP_PROP_FRAME_COUNT)),
                               width=int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
                               height=int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
                               fps=float(capture.get(cv2.CAP_PROP_FPS)))
    finally:
        capture.release()


def video_frame_count(path: str) -> int:
    """Frames in a video according to its container; 0 when OpenCV cannot open it."""
    capture = cv2.VideoCapture(path)
    try:
        return int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if capture.isOpened() else 0
    finally:
        capture.release()


def open_video_writer(path, fps: float, size: tuple[int, int]) -> cv2.VideoWriter:
    """An mp4v ``cv2.VideoWriter`` for BGR frames of ``size`` (width, height) at ``fps``.

    mp4v (MPEG-4 part 2) is in every OpenCV build with FFmpeg, unlike H.264. Raises OSError
    naming the file when OpenCV cannot write it.
    """
    width, height = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise OSError(f"OpenCV cannot write the video {path} (mp4v codec, {width}x{height}). "
                      "Check that the folder is writable and OpenCV has FFmpeg support.")
    return writer
