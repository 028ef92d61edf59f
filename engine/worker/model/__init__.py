"""Model runtime: loading, quantization, batching, sampling and stopping.

Submodules are imported directly (``engine.worker.model.generator`` …) so that the
torch-free parts (``sampling``, ``stopping``) stay cheap to import.
"""
