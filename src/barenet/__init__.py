"""barenet: neural networks from scratch in NumPy.

>>> import barenet as bn
>>> model = bn.Sequential([bn.Dense(2, 64), bn.ReLU(), bn.Dense(64, 3)], seed=0)
>>> model.compile(loss="cross_entropy", optimizer=bn.Adam(lr=0.01))
"""

from barenet import (
    activations,
    augment,
    callbacks,
    conv,
    doctor,
    init,
    layers,
    losses,
    metrics,
    normalization,
    optim,
    schedules,
)
from barenet.activations import LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from barenet.augment import ImageAugment
from barenet.callbacks import (
    Callback,
    Checkpoint,
    EarlyStopping,
    History,
    LearningRateScheduler,
    ModelCheckpoint,
    Monitor,
    ProgressBar,
)
from barenet.conv import AvgPool2D, Conv2D, GlobalAvgPool2D, MaxPool2D
from barenet.doctor import diagnose
from barenet.errors import (
    ArgumentError,
    BarenetError,
    DatasetError,
    ModelFileError,
    StateError,
    TrainingError,
)
from barenet.gradcheck import check_grad
from barenet.interop import from_torch
from barenet.io import load_model
from barenet.layers import Dense, Dropout, Flatten, Layer
from barenet.losses import MAE, MSE, BinaryCrossEntropy, CrossEntropy, Loss
from barenet.model import Sequential
from barenet.normalization import BatchNorm
from barenet.optim import SGD, Adagrad, Adam, AdamW, Optimizer, RMSprop
from barenet.schedules import CosineDecay, ExponentialDecay, InverseTimeDecay, StepDecay, WarmUp

__version__ = "0.1.0"

__all__ = [
    "MAE",
    "MSE",
    "SGD",
    "Adagrad",
    "Adam",
    "AdamW",
    "ArgumentError",
    "AvgPool2D",
    "BarenetError",
    "BatchNorm",
    "BinaryCrossEntropy",
    "Callback",
    "Checkpoint",
    "Conv2D",
    "CosineDecay",
    "CrossEntropy",
    "DatasetError",
    "Dense",
    "Dropout",
    "EarlyStopping",
    "ExponentialDecay",
    "Flatten",
    "GlobalAvgPool2D",
    "History",
    "ImageAugment",
    "InverseTimeDecay",
    "Layer",
    "LeakyReLU",
    "LearningRateScheduler",
    "Loss",
    "MaxPool2D",
    "ModelCheckpoint",
    "ModelFileError",
    "Monitor",
    "Optimizer",
    "ProgressBar",
    "RMSprop",
    "ReLU",
    "Sequential",
    "Sigmoid",
    "Softmax",
    "StateError",
    "StepDecay",
    "Tanh",
    "TrainingError",
    "WarmUp",
    "__version__",
    "activations",
    "augment",
    "callbacks",
    "check_grad",
    "conv",
    "diagnose",
    "doctor",
    "from_torch",
    "init",
    "layers",
    "load_model",
    "losses",
    "metrics",
    "normalization",
    "optim",
    "schedules",
]
