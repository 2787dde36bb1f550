"""TEMPORARY, for the merge only: the old name of ``rig.exports`` (and ``rig.renderings``), kept
because evaluation.py, another helper's file during issue 24, still imports it for ``write_npz``
and ``write_csv``. Delete this file once evaluation.py imports ``from rig import exports``."""
from rig.exports import write_csv
from rig.exports import write_npz

__all__ = ["write_csv", "write_npz"]
