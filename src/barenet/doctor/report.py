"""The doctor's answer: findings, one row of measurements per layer, and the printed table."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

#: Causes that mean a layer's backward is wrong or breaks the contract the optimizer needs.
GRADIENT_CAUSES = {"gradient", "in_place", "shape", "dtype", "state", "param_backward"}


@dataclass
class Finding:
    """One thing the doctor found: ``severity`` ("error", "warning", "info"), a short
    ``cause`` code (e.g. "gradient", "in_place", "dead_relu"), the ``layer`` it concerns
    (None for the data or the whole model), what it saw, and what to try."""

    severity: str
    cause: str
    message: str
    fix: str
    layer: str | None = None


@dataclass
class LayerRow:
    """What the doctor measured on one layer (None where it does not apply)."""

    index: int
    name: str
    kind: str
    output_shape: tuple[int, ...]
    grad_error: float | None = None
    grad_errors: dict[str, float] = field(default_factory=dict)
    grad_entries: int = 0
    grad_norm: float | None = None
    update_ratio: float | None = None
    dead: float | None = None
    saturated: float | None = None
    note: str = ""


@dataclass
class Report:
    """The doctor's answer; ``print(report)`` shows a table, ``to_dict()`` is for code."""

    layers: list[LayerRow]
    findings: list[Finding]
    samples: int
    grad_samples: int
    loss: float | None = None
    expected_loss: float | None = None
    seconds: float = 0.0

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    @property
    def ok(self) -> bool:
        """True when there is nothing worse than "info"."""
        return not self.errors and not self.warnings

    @property
    def gradient_ok(self) -> bool:
        """False when a backward disagrees with finite differences or breaks the contract."""
        return not any(f.cause in GRADIENT_CAUSES for f in self.errors)

    @property
    def first_bad_layer(self) -> str | None:
        """The first layer, from the loss backwards, whose gradient is wrong."""
        bad = {f.layer for f in self.errors if f.cause in GRADIENT_CAUSES}
        for row in reversed(self.layers):
            if row.name in bad:
                return row.name
        return None

    @property
    def grad_entries(self) -> int:
        """How many entries (inputs and parameters) were checked by finite differences."""
        return sum(row.grad_entries for row in self.layers)

    def causes(self, severity: str | None = None) -> list[tuple[str, str | None]]:
        """``(cause, layer)`` of every finding, or of those of one severity."""
        return [(f.cause, f.layer) for f in self.findings if severity in (None, f.severity)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "gradient_ok": self.gradient_ok,
            "first_bad_layer": self.first_bad_layer,
            "samples": self.samples,
            "grad_samples": self.grad_samples,
            "grad_entries": self.grad_entries,
            "loss": self.loss,
            "expected_loss": self.expected_loss,
            "seconds": self.seconds,
            "layers": [{**asdict(r), "output_shape": list(r.output_shape)} for r in self.layers],
            "findings": [asdict(f) for f in self.findings],
        }

    def __str__(self) -> str:
        lines = [
            f"{len(self.layers)} layers, {self.samples} samples; gradients checked in float64 on "
            f"{self.grad_samples} samples, {self.grad_entries} entries by finite differences",
            *_table(self.layers),
        ]
        if self.loss is not None:
            expected = "" if self.expected_loss is None else f" (log C = {self.expected_loss:.3g})"
            lines.append(f"loss on the batch: {self.loss:.4g}{expected}")
        lines.append("")
        if not self.findings:
            lines.append("healthy: no findings")
        for f in self.findings:
            where = f" {f.layer}:" if f.layer else ""
            lines.append(f"{f.severity:<7}{where} {f.message}")
            lines.append(f"        try: {f.fix}")
        return "\n".join(lines)


def _table(layers: list[LayerRow]) -> list[str]:
    """One line per layer under a header and a rule, columns padded to their widest cell."""
    header = ("#", "layer", "output", "gradient", "grad norm", "update", "activations")
    rows = [header]
    for r in layers:
        rows.append(
            (
                str(r.index),
                r.name,
                "(" + ", ".join(map(str, r.output_shape)) + ")",
                r.note or ("-" if r.grad_error is None else _e(r.grad_error)),
                _e(r.grad_norm),
                _e(r.update_ratio),
                _activity(r),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = []
    for i, row in enumerate(rows):
        lines.append("  ".join(f"{c:<{w}}" for c, w in zip(row, widths, strict=True)).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return lines


def _e(value: float | None) -> str:
    return "-" if value is None else f"{value:.1e}"


def _activity(row: LayerRow) -> str:
    if row.dead is not None:
        return f"dead {row.dead:.0%}"
    if row.saturated is not None:
        return f"saturated {row.saturated:.0%}"
    return ""
