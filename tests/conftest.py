"""Shared fixtures. The real datasets are loaded once per test session (and cached)."""

from __future__ import annotations

import pytest

from barenet.datasets import load_fashion_mnist, load_mnist


@pytest.fixture(scope="session")
def mnist():
    """MNIST as ``((x_train, y_train), (x_test, y_test))``, uint8, from the user's cache."""
    return load_mnist()


@pytest.fixture(scope="session")
def fashion():
    """Fashion-MNIST as ``((x_train, y_train), (x_test, y_test))``, uint8."""
    return load_fashion_mnist()
