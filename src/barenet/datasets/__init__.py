"""Data for barenet: MNIST, Fashion-MNIST and small toy sets."""

from barenet.datasets.toy import sine, spiral, vertical

__all__ = ["sine", "spiral", "vertical"]
