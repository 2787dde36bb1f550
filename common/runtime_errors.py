"""TensorFlow's runtime errors with a known cause, said in words with the fix: out of memory (the
batch, the precision, the flags that help), a damaged crop cache, a lost multi-worker worker."""
from __future__ import annotations

import os


def explain(error: Exception, args) -> str | None:
    """The message for ``error`` raised by a run of ``args``; None when its cause is not known here."""
    import tensorflow as tf
    if isinstance(error, tf.errors.ResourceExhaustedError) and args is not None:
        from common import devices
        return devices.explain_out_of_memory(args, args.config)
    if isinstance(error, tf.errors.DataLossError):
        from pipeline import crop_cache
        return crop_cache.explain_data_loss(args.cache_dir if args else None, error)
    from common import distribution
    if args is not None and args.strategy == "multiworker" and isinstance(error, distribution.LOST_WORKER_ERRORS):
        return (f"a worker of the multi-worker run was lost or stopped answering ({type(error).__name__}: "
                f"{distribution.describe_lost_worker(error)}). Start every worker again with the same command "
                f"and --resume: they continue from the chief's last backup in "
                f"{os.path.join(args.checkpoint_dir, 'backup')}.")
    return None
