"""``diagnose``: run a model on one batch and say what is wrong with it.

A network that trains badly rarely says why. ``bn.diagnose(model, x, y)`` (or
``model.diagnose(x, y)``) looks at one batch, on copies of the model, and reports:

* **gradients** — every layer's backward against central differences, in float64, on its
  own (a fixed random projection of its output is the scalar differentiated), on a sample
  of the entries of its input and of each parameter (``gradients``);
* **the layer contract** — gradients written in place into ``self.grads`` (the model's
  optimizer updates one flat buffer the layers hold views of), of the right shape and
  dtype, and forward/backward that do not depend on earlier calls (``contract``);
* **health** — the starting loss against ``log(C)``, dead ReLU units, saturated
  sigmoid/tanh outputs, gradient norms, the update-to-weight ratio of one optimizer step
  (``health``), the scale of the inputs and the sanity of the labels (``data``).

Each finding has a severity ("error", "warning" or "info") and a line saying what to try
(``report``). The user's model, its optimizer and their random generators are left
untouched: every check runs on copies (``twins``). ``checkup`` runs them in order.
"""

from __future__ import annotations

from barenet.doctor.checkup import diagnose
from barenet.doctor.gradients import GRAD_TOL
from barenet.doctor.health import DEAD_ERROR, DEAD_NOTE, SATURATED_WARN, UPDATE_WARN, VANISHING
from barenet.doctor.measures import (
    dead_fraction,
    layer_names,
    saturated_fraction,
    unbound_gradients,
)
from barenet.doctor.report import Finding, LayerRow, Report

__all__ = [
    "DEAD_ERROR",
    "DEAD_NOTE",
    "GRAD_TOL",
    "SATURATED_WARN",
    "UPDATE_WARN",
    "VANISHING",
    "Finding",
    "LayerRow",
    "Report",
    "dead_fraction",
    "diagnose",
    "layer_names",
    "saturated_fraction",
    "unbound_gradients",
]
