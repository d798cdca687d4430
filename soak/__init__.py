"""soak: memory-leak and hot-reload soak monitor for TensorFlow Serving."""

__version__ = "0.1.0"
