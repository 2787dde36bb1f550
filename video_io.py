"""Reading videos with OpenCV: open with one decoding thread, stream chosen frames forward, sample
frames spread over a whole video, count frames.

Every module that reads video frames (the crop cache, the root finder, predict) goes through here.
Frames are (H, W, 3) uint8 BGR, as OpenCV decodes them.
"""
from __future__ import annotations

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


def sample_frames(path, count: int) -> Iterator[np.ndarray]:
    """Yield up to ``count`` (H, W, 3) uint8 BGR frames spread evenly over the whole video.

    For a background model, not for data: each sample is reached by seeking (the decoder starts
    at the key frame before it), so the cost is bounded by ``count`` x the key-frame interval
    however long the video is, and the spread follows the container's frame count; a sample whose
    seek or read fails is left out. A video that cannot be opened or has no frame raises
    ``ValueError`` naming the file. Each frame is a new array.
    """
    capture = open_video(path)
    try:
        total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if capture.isOpened() else 0
        if total <= 0:
            raise ValueError(f"Cannot open video {path} or it has no frames: the file is missing, corrupt or "
                             "not a video OpenCV can decode. Re-download or regenerate it.")
        for index in np.unique(np.linspace(0, total - 1, min(count, total)).round().astype(int)):
            ok, frame = capture.read() if capture.set(cv2.CAP_PROP_POS_FRAMES, int(index)) else (False, None)
            if ok and frame is not None:
                yield frame
    finally:
        capture.release()


def video_frame_count(path: str) -> int:
    """Frames in a video according to its container; 0 when OpenCV cannot open it."""
    capture = cv2.VideoCapture(path)
    try:
        return int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if capture.isOpened() else 0
    finally:
        capture.release()
