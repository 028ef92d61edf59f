"""Errors raised while finding and loading a model, each with a message for operators."""

from __future__ import annotations

from engine.errors import OperatorError


class ModelLoadError(OperatorError):
    """Report that the configured model could not be loaded."""


class ModelNotAvailable(ModelLoadError):
    """Report that the bundled model's package is not installed."""


class ModelFolderMissing(ModelLoadError, FileNotFoundError):
    """Report that a local model folder does not exist or lacks ``config.json``."""


class UnknownQuantization(ModelLoadError, ValueError):
    """Report a quantization name that is not nf4, fp4, int8 or none."""


class DeviceUnavailable(ModelLoadError):
    """Report that the requested device (CUDA) is not present."""
