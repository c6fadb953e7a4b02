"""ONNX graphs: converted to PyTorch (differentiable) or, failing that, run as a black box.

onnx2torch rebuilds the graph from PyTorch modules, so gradients reach the input and every
white-box attack works. A graph with an operator it cannot convert runs in onnxruntime instead
(:class:`OnnxRuntimeNet`): logits only, no gradient, so the attack lab offers the query-based
and transfer attacks (``has_input_gradients`` is False for it).

Parsing an ONNX file runs no code (it is a protobuf, not a pickle); weights stored in external
data files next to the graph are refused rather than read from wherever the graph points.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from advstudio.core.errors import ModelLoadError
from advstudio.core.models.frozen import FrozenNet


def _read(path: Path):
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise ModelLoadError(
            f"{path.name} is not a readable ONNX graph: "
            f"{str(exc).splitlines()[0]} (is it another kind of file?)"
        ) from exc
    for init in model.graph.initializer:
        if init.data_location == onnx.TensorProto.EXTERNAL:
            raise ModelLoadError(
                f"{path.name} keeps its weights in external data files; "
                "save it as one file (onnx.save(model, path, "
                "save_as_external_data=False))"
            )
    return model


def inline_shared_weights(model) -> None:
    """Turn ``Identity(initializer)`` nodes back into initializers, in place.

    torch's exporter stores identical weights once (e.g. the zero biases a BatchNorm folds
    into) and feeds the copies through Identity nodes; onnx2torch wants a Conv's weights as
    initializers and fails with a KeyError on such graphs.
    """
    import onnx

    inits = {i.name: i for i in model.graph.initializer}
    keep = []
    for node in model.graph.node:
        if node.op_type == "Identity" and node.input[0] in inits:
            copy = onnx.TensorProto()
            copy.CopyFrom(inits[node.input[0]])
            copy.name = node.output[0]
            model.graph.initializer.append(copy)
            inits[copy.name] = copy
        else:
            keep.append(node)
    del model.graph.node[:]
    model.graph.node.extend(keep)


def graph_input_shape(model) -> tuple[tuple[int, ...] | None, int | None]:
    """(C, H, W) of the graph's first input and its fixed batch (None: dynamic or unknown)."""
    inits = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    if not inputs:
        return None, None
    dims = [
        d.dim_value if d.HasField("dim_value") else None
        for d in inputs[0].type.tensor_type.shape.dim
    ]
    if len(dims) != 4:
        return None, None
    shape = tuple(dims[1:]) if all(d for d in dims[1:]) else None
    return shape, dims[0] or None


class OnnxRuntimeNet(nn.Module):
    """An ONNX graph run by onnxruntime on the CPU: (N, C, H, W) float32 in, logits out, no
    gradient (a black box). A graph with a fixed batch is run one chunk of it at a time."""

    black_box = True

    def __init__(self, data: bytes, batch: int | None) -> None:
        super().__init__()
        import onnxruntime

        self.session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.batch = batch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        arr = x.detach().to("cpu", torch.float32).numpy()
        step = self.batch or max(1, len(arr))
        outs = []
        for i in range(0, len(arr), step):
            chunk = arr[i : i + step]
            n = len(chunk)
            if self.batch and n < self.batch:
                chunk = np.concatenate([chunk, np.repeat(chunk[:1], self.batch - n, 0)])
            outs.append(self.session.run(None, {self.input_name: chunk})[0][:n])
        return torch.from_numpy(np.concatenate(outs)).to(x.device)


def load_onnx(path: Path) -> tuple[nn.Module, tuple[int, ...] | None, str]:
    """The graph as a module, the input shape it declares, and why it is a black box ("" when
    it converted)."""
    model = _read(path)
    shape, batch = graph_input_shape(model)
    try:
        from onnx2torch import convert

        inline_shared_weights(model)
        net = convert(model)
    except Exception as exc:  # an operator onnx2torch lacks: run it as it is
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        try:
            net = OnnxRuntimeNet(model.SerializeToString(), batch)
        except Exception as exc2:
            raise ModelLoadError(
                f"{path.name}: the ONNX graph neither converts to PyTorch "
                f"({reason}) nor runs in onnxruntime "
                f"({str(exc2).splitlines()[0]})"
            ) from exc2
        return (
            net,
            shape,
            (
                f"black box: the ONNX graph does not convert to PyTorch ({reason}); "
                "white-box attacks are off, query and transfer attacks work"
            ),
        )
    return FrozenNet(net.eval(), batch), shape, ""
