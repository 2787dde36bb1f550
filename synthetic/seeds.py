"""The synthetic set's random streams: one per (seed, keys), so no part of the set depends on another."""
from __future__ import annotations

import numpy as np

import h36m_utils


def stream(seed: int, *keys: int) -> np.random.Generator:
    """Independent stream per (seed, keys): a subject's data never depends on the others."""
    return np.random.default_rng([seed, *keys])


def subject_number(subject: str) -> int:
    """1 for S1 ... 11 for S11: a subject's key in ``stream``."""
    return h36m_utils.SUBJECTS.index(subject) + 1
