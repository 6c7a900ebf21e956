"""Model runners, one per format, behind one interface (see ``base.Runner``).

This package imports no framework; each runner imports its own lazily.
"""

from convlint.analyzers.models.base import LayerInfo, Runner, TensorSpec
from convlint.analyzers.models.detect import FORMATS, detect_format, open_model

__all__ = ["FORMATS", "LayerInfo", "Runner", "TensorSpec", "detect_format", "open_model"]
