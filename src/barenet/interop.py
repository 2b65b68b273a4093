"""PyTorch interop: ``from_torch`` (an ``nn.Sequential`` or a state_dict into a barenet
model) and ``to_torch`` (a barenet model into an equivalent ``nn.Sequential``).

The layouts already agree: ``Dense.weight`` is ``nn.Linear.weight`` (out, in) and
``Conv2D.weight`` is ``nn.Conv2d.weight`` (out, in, kh, kw), so weights are copied as
they are, bit for bit. BatchNorm's conventions agree too: ``momentum`` is the weight of
the new batch in both (PyTorch's 0.1 is barenet's 0.1), the running variance is unbiased
in both, and ``eps`` is added to the variance in both. Two things differ in shape:
barenet's ``GlobalAvgPool2D`` gives (N, C) where ``nn.AdaptiveAvgPool2d(1)`` gives
(N, C, 1, 1) (so the ``nn.Flatten`` after the latter has no barenet layer), and barenet
takes (N, H, W) images where PyTorch needs (N, 1, H, W).

A trailing ``Softmax`` is kept as a layer: compiled with ``cross_entropy``, barenet fuses
it with the loss in training, as ``nn.CrossEntropyLoss`` on logits would. A network that
ends in logits converts to a model that ends in logits; compile it with
``cross_entropy`` and ``predict_proba`` applies the softmax.

torch is imported inside these functions only, never by ``import barenet``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from barenet.activations import LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from barenet.conv import AvgPool2D, Conv2D, GlobalAvgPool2D, MaxPool2D
from barenet.errors import ArgumentError
from barenet.layers import Dense, Dropout, Flatten, Layer
from barenet.normalization import BatchNorm
from barenet.optional import require

if TYPE_CHECKING:
    from barenet.model import Sequential

__all__ = ["from_torch", "to_torch"]


def _torch(feature: str) -> Any:
    return require("torch", "torch", feature)


def _numpy(tensor: Any) -> np.ndarray:
    """A detached NumPy copy of a tensor (float32 or float64), refusing other dtypes."""
    a = tensor.detach().cpu().numpy().copy()
    if a.dtype not in (np.float32, np.float64):
        raise ArgumentError(f"barenet holds float32 or float64 weights, got a {a.dtype} tensor")
    return a


def _pair(value: Any) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


# ---- PyTorch -> barenet ---------------------------------------------------------------
def _set(layer: Layer, **arrays: np.ndarray | None) -> Layer:
    """Copy ``arrays`` into the layer's parameters (a missing bias stays zero)."""
    for name, value in arrays.items():
        if value is None:
            continue
        target = layer.state()[name] if name.startswith("running_") else layer.params[name]
        target[...] = value.reshape(target.shape)
    return layer


def _convert(module: Any, nn: Any, where: str) -> list[Layer]:
    """The barenet layers equivalent to one PyTorch module (none for ``nn.Identity``)."""
    bias = getattr(module, "bias", None)
    b = None if bias is None else _numpy(bias)
    if isinstance(module, nn.Linear):
        w = _numpy(module.weight)
        return [_set(Dense(w.shape[1], w.shape[0], dtype=w.dtype), weight=w, bias=b)]
    if isinstance(module, nn.Conv2d):
        return [_conv(module, b, where)]
    if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
        return [_pool(module, nn, where)]
    if isinstance(module, nn.AdaptiveAvgPool2d) and _pair(module.output_size) == (1, 1):
        return [GlobalAvgPool2D()]
    if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        return [_batchnorm(module, where)]
    if isinstance(module, nn.LeakyReLU):
        return [LeakyReLU(module.negative_slope)]
    if isinstance(module, nn.Softmax) and module.dim in (1, -1):
        return [Softmax()]
    if isinstance(module, nn.Flatten) and (module.start_dim, module.end_dim) == (1, -1):
        return [Flatten()]
    if isinstance(module, nn.Dropout):
        return [Dropout(module.p)]
    if isinstance(module, nn.Identity):
        return []
    simple = {nn.ReLU: ReLU, nn.Sigmoid: Sigmoid, nn.Tanh: Tanh}
    if type(module) in simple:
        return [simple[type(module)]()]
    raise ArgumentError(f"{where} ({module!r}) has no barenet counterpart")


def _conv(module: Any, b: np.ndarray | None, where: str) -> Conv2D:
    w = _numpy(module.weight)
    stride = _pair(module.stride)
    if module.groups != 1 or _pair(module.dilation) != (1, 1) or module.padding_mode != "zeros":
        raise ArgumentError(f"{where} ({module!r}) uses groups, dilation or non-zero padding")
    padding: int | str = "same"
    if module.padding != "same":
        ph, pw = (0, 0) if module.padding == "valid" else _pair(module.padding)
        if ph != pw:
            raise ArgumentError(f"{where} ({module!r}): barenet pads every side alike")
        padding = ph
    if stride[0] != stride[1]:
        raise ArgumentError(f"{where} ({module!r}): barenet moves by one stride on both axes")
    layer = Conv2D(w.shape[1], w.shape[0], w.shape[2:], stride[0], padding, dtype=w.dtype)
    return _set(layer, weight=w, bias=b)  # type: ignore[return-value]


def _pool(module: Any, nn: Any, where: str) -> Layer:
    kernel = _pair(module.kernel_size)
    stride = _pair(module.stride if module.stride is not None else module.kernel_size)
    plain = _pair(module.padding) == (0, 0) and not module.ceil_mode
    if isinstance(module, nn.MaxPool2d):
        plain = plain and _pair(module.dilation) == (1, 1) and not module.return_indices
    else:
        plain = plain and module.divisor_override is None
    if not plain or (stride != kernel and stride[0] != stride[1]):
        raise ArgumentError(
            f"{where} ({module!r}): barenet pools without padding, dilation or ceil_mode, "
            "with one stride"
        )
    cls = MaxPool2D if isinstance(module, nn.MaxPool2d) else AvgPool2D
    return cls(list(kernel), None if stride == kernel else stride[0])  # type: ignore[arg-type]


def _batchnorm(module: Any, where: str) -> BatchNorm:
    if not module.track_running_stats or module.momentum is None:
        raise ArgumentError(
            f"{where} ({module!r}): barenet keeps running statistics with a fixed momentum"
        )
    dtype = module.running_mean.dtype
    layer = BatchNorm(
        module.num_features,
        momentum=module.momentum,
        eps=module.eps,
        dtype=np.float64 if dtype == _torch("from_torch").float64 else np.float32,
    )
    return _set(  # type: ignore[return-value]
        layer,
        weight=None if module.weight is None else _numpy(module.weight),
        bias=None if module.bias is None else _numpy(module.bias),
        running_mean=_numpy(module.running_mean),
        running_var=_numpy(module.running_var),
    )


def _modules(module: Any, nn: Any) -> Iterable[tuple[str, Any]]:
    """The leaf modules of (nested) ``nn.Sequential`` containers, with their names."""
    for name, child in module.named_children():
        if isinstance(child, nn.Sequential):
            for sub, leaf in _modules(child, nn):
                yield f"{name}.{sub}", leaf
        else:
            yield name, child


def _from_module(module: Any, nn: Any) -> list[Layer]:
    layers: list[Layer] = []
    for name, child in _modules(module, nn):
        if (
            isinstance(child, nn.Flatten)
            and layers
            and isinstance(layers[-1], GlobalAvgPool2D)
            and (child.start_dim, child.end_dim) == (1, -1)
        ):
            continue  # GlobalAvgPool2D already gives (N, C)
        layers += _convert(child, nn, f"module {name!r}")
    if layers and isinstance(layers[-1], GlobalAvgPool2D):
        raise ArgumentError("nn.AdaptiveAvgPool2d(1) must be followed by nn.Flatten()")
    return layers


def _from_state_dict(state: Mapping[str, Any], architecture: Sequential) -> list[Layer]:
    """Fill ``architecture``'s layers, in order, from the state_dict's modules, in order."""
    groups: dict[str, dict[str, Any]] = {}
    for key, value in state.items():
        prefix, _, name = key.rpartition(".")
        if name != "num_batches_tracked":
            groups.setdefault(prefix, {})[name] = value
    pending = list(groups.items())
    for i, layer in enumerate(architecture.layers):
        wanted = {**layer.params, **layer.state()}
        if not wanted:
            continue
        if not pending:
            raise ArgumentError(f"the state_dict has no weights for layer {i} ({layer!r})")
        prefix, tensors = pending.pop(0)
        if set(tensors) - set(wanted) or not {"weight"} <= set(tensors):
            raise ArgumentError(
                f"state_dict module {prefix!r} holds {sorted(tensors)}; layer {i} ({layer!r}) "
                f"holds {sorted(wanted)}"
            )
        for name, tensor in tensors.items():
            value = _numpy(tensor)
            if value.shape != wanted[name].shape:
                raise ArgumentError(
                    f"state_dict {prefix}.{name} has shape {list(value.shape)}; layer {i} "
                    f"({layer!r}) holds {list(wanted[name].shape)}"
                )
            wanted[name][...] = value
    if pending:
        raise ArgumentError(f"the state_dict has weights for no layer: {[p for p, _ in pending]}")
    return architecture.layers


def from_torch(
    source: Any,
    architecture: Sequential | None = None,
    *,
    input_shape: tuple[int, ...] | None = None,
) -> Sequential:
    """A barenet ``Sequential`` equivalent to a PyTorch network.

    ``source`` is an ``nn.Sequential`` (nested ones are flattened) of ``Linear``,
    ``Conv2d``, ``MaxPool2d``, ``AvgPool2d``, ``AdaptiveAvgPool2d(1)``, ``BatchNorm1d``/
    ``2d``, ``ReLU``, ``LeakyReLU``, ``Sigmoid``, ``Tanh``, ``Softmax(dim=1)``,
    ``Flatten``, ``Dropout`` and ``Identity``; or a state_dict together with the barenet
    ``architecture`` to fill (its layers with parameters take the state_dict's modules in
    order; the architecture is filled in place and returned). The weights are copied.
    The model is not compiled: ``compile`` it to train or evaluate.
    """
    from barenet.model import Sequential

    torch = _torch("from_torch")
    nn = torch.nn
    if isinstance(source, Mapping):
        if not isinstance(architecture, Sequential):
            raise ArgumentError("a state_dict needs architecture=, the barenet Sequential to fill")
        model = architecture
        _from_state_dict(source, architecture)
    elif isinstance(source, nn.Sequential):
        if architecture is not None:
            raise ArgumentError("architecture= goes with a state_dict, not an nn.Sequential")
        model = Sequential(_from_module(source, nn))
    else:
        raise ArgumentError(
            f"source must be an nn.Sequential or a state_dict, got {type(source).__name__}"
        )
    if input_shape is not None:
        model.input_shape = tuple(int(d) for d in input_shape)
    return model


# ---- barenet -> PyTorch -----------------------------------------------------------------
def _tensor(torch: Any, a: np.ndarray) -> Any:
    return torch.nn.Parameter(torch.from_numpy(np.array(a)), requires_grad=True)


def _to_module(layer: Layer, nn: Any, torch: Any, images: bool) -> list[Any]:
    """The PyTorch modules equivalent to one barenet layer."""
    if isinstance(layer, Dense):
        m = nn.Linear(layer.in_features, layer.out_features, dtype=_dtype(torch, layer))
        m.weight, m.bias = (_tensor(torch, layer.params[k]) for k in ("weight", "bias"))
        return [m]
    if isinstance(layer, Conv2D):
        c = nn.Conv2d(
            layer.in_channels,
            layer.out_channels,
            layer.kernel_size,
            layer.stride,
            layer.padding,
            dtype=_dtype(torch, layer),
        )
        c.weight, c.bias = (_tensor(torch, layer.params[k]) for k in ("weight", "bias"))
        return [c]
    if isinstance(layer, (MaxPool2D, AvgPool2D)):
        pool = nn.MaxPool2d if isinstance(layer, MaxPool2D) else nn.AvgPool2d
        return [pool(layer.kernel_size, layer.stride or layer.kernel_size)]
    if isinstance(layer, GlobalAvgPool2D):
        return [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    if isinstance(layer, BatchNorm):
        kind = nn.BatchNorm2d if images else nn.BatchNorm1d
        bn = kind(
            layer.num_features, eps=layer.eps, momentum=layer.momentum, dtype=_dtype(torch, layer)
        )
        bn.weight, bn.bias = (_tensor(torch, layer.params[k]) for k in ("weight", "bias"))
        with torch.no_grad():
            bn.running_mean.copy_(torch.from_numpy(layer.running_mean))
            bn.running_var.copy_(torch.from_numpy(layer.running_var))
        return [bn]
    if isinstance(layer, LeakyReLU):
        return [nn.LeakyReLU(layer.negative_slope)]
    if isinstance(layer, Softmax):
        return [nn.Softmax(dim=1)]
    if isinstance(layer, Dropout):
        return [nn.Dropout(layer.rate)]
    simple = {ReLU: nn.ReLU, Sigmoid: nn.Sigmoid, Tanh: nn.Tanh, Flatten: nn.Flatten}
    if type(layer) in simple:
        return [simple[type(layer)]()]
    raise ArgumentError(f"layer {layer!r} has no PyTorch counterpart in barenet.interop")


def _dtype(torch: Any, layer: Layer) -> Any:
    return torch.float64 if layer.params["weight"].dtype == np.float64 else torch.float32


def to_torch(model: Sequential) -> Any:
    """An ``nn.Sequential`` computing what ``model.forward`` computes, in eval mode.

    Images go in as (N, C, H, W); a model that reads (N, H, W) takes (N, 1, H, W). A
    model that ends in logits gives logits, as ``model.forward`` does.
    """
    torch = _torch("to_torch")
    nn = torch.nn
    shape = model.input_shape
    images = shape is not None and len(shape) >= 2
    modules: list[Any] = []
    for layer in model.layers:
        if isinstance(layer, (Conv2D, MaxPool2D, AvgPool2D)):
            images = True
        modules += _to_module(layer, nn, torch, images)
        if isinstance(layer, (Dense, Flatten, GlobalAvgPool2D)):
            images = False
    return nn.Sequential(*modules).eval()
