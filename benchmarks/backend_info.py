"""The one line every benchmark table starts with: Keras, its backend, versions and the device."""
import os

import keras


def describe_backend() -> str:
    """e.g. "Keras 3.15.1, JAX 0.11.2 on GPU (NVIDIA H200)" or "Keras 3.15.1, TensorFlow 2.21.0 on CPU (2 threads)"."""
    if keras.backend.backend() == "jax":
        import jax
        device = jax.devices()[0]
        return f"Keras {keras.__version__}, JAX {jax.__version__} on {device.platform.upper()} ({device.device_kind})"
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf
        gpus = tf.config.list_physical_devices("GPU")
        device = f"GPU ({len(gpus)})" if gpus else f"CPU ({os.cpu_count()} threads)"
        return f"Keras {keras.__version__}, TensorFlow {tf.__version__} on {device}"
    return f"Keras {keras.__version__}, backend {keras.backend.backend()}"
