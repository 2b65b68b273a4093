"""Optional third-party packages (onnx, safetensors, torch), imported only when used.

``barenet`` itself needs NumPy alone; the file formats and interop that lean on another
library import it here, inside the function that needs it, and a missing one is a single
clear error naming the ``pip install`` that brings it.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from barenet.errors import BarenetError

__all__ = ["MissingDependencyError", "require"]


class MissingDependencyError(BarenetError, ImportError):
    """An optional package that a feature needs is not installed."""


def require(module: str, extra: str, feature: str) -> ModuleType:
    """Import ``module`` for ``feature``, or raise one line saying which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingDependencyError(
            f"{feature} needs the {module.split('.')[0]!r} package: pip install 'barenet[{extra}]'"
        ) from None
