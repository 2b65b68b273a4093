"""barenet: neural networks from scratch in NumPy."""

from barenet.errors import (
    ArgumentError,
    BarenetError,
    DatasetError,
    ModelFileError,
    TrainingError,
)

__version__ = "0.1.0"

__all__ = [
    "ArgumentError",
    "BarenetError",
    "DatasetError",
    "ModelFileError",
    "TrainingError",
    "__version__",
]
