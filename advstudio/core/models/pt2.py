"""``torch.export`` archives (.pt2): checked for pickles, then loaded and wrapped.

``torch.export.load`` is not safe on untrusted files: torch 2.13 unpickles with
``weights_only=False`` every weight or constant its config marks ``use_pickle``, the legacy
``weights/<model>.pt`` / ``constants/<model>.pt`` files and, when a plain load fails, the sample
inputs; it also ``pickle.loads`` opaque objects and loads AOTInductor shared libraries. So the
archive is inspected first (:func:`check_archive`) and refused unless every pickled entry holds
tensors only (checked here with ``weights_only=True``, which then is also what torch's own first
attempt succeeds with).

An exported module's train/eval mode is baked into its graph: ``.eval()`` on it raises
"Calling eval() is not supported yet", so it is wrapped in
:class:`~advstudio.core.models.frozen.FrozenNet`.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import torch

from advstudio.core.errors import ModelLoadError, UnsafeModelFileError
from advstudio.core.models.frozen import FrozenNet

_REFUSE = (
    "a pickled Python object",
    "advstudio does not unpickle arbitrary objects (it "
    "could run code); export the model again with torch.export.save from plain "
    "tensors, or save its state_dict as safetensors",
)


def _unsafe(path: Path, entry: str) -> UnsafeModelFileError:
    return UnsafeModelFileError(
        f"{path.name}: the torch.export archive holds {_REFUSE[0]} ({entry}); {_REFUSE[1]}"
    )


def _tensors_only(zf: zipfile.ZipFile, name: str, path: Path) -> None:
    try:
        torch.load(io.BytesIO(zf.read(name)), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise _unsafe(path, name) from exc


def check_archive(path: Path) -> None:
    """Raise :class:`UnsafeModelFileError` unless loading ``path`` unpickles tensors only."""
    with zipfile.ZipFile(path) as zf:
        for name in zf.namelist():
            tail = name.split("/", 1)[-1]
            if tail.startswith("data/aotinductor/"):
                raise UnsafeModelFileError(
                    f"{path.name} holds AOTInductor compiled code ({name}); advstudio loads "
                    "exported programs only (torch.export.save), not compiled libraries"
                )
            if tail.endswith("_config.json") and tail.startswith(
                ("data/weights/", "data/constants/")
            ):
                config = json.loads(zf.read(name)).get("config", {})
                for fqn, meta in config.items():
                    if meta.get("use_pickle") or not str(meta.get("path_name", "")).startswith(
                        ("weight_", "tensor_")
                    ):
                        raise _unsafe(path, f"{fqn} in {tail}")
            elif tail.endswith(".pt") and tail.startswith(
                ("data/weights/", "data/constants/", "data/sample_inputs/")
            ):
                _tensors_only(zf, name, path)


def input_shape_and_batch(
    program: torch.export.ExportedProgram,
) -> tuple[tuple[int, ...] | None, int | None]:
    """The (C, H, W) the program was exported for and its fixed batch size (None: dynamic),
    from the first user input's fake tensor; (None, None) when it is not an image batch."""
    specs = [
        s
        for s in program.graph_signature.input_specs
        if s.kind == torch.export.graph_signature.InputKind.USER_INPUT
    ]
    nodes = {n.name: n for n in program.graph.nodes if n.op == "placeholder"}
    if not specs or specs[0].arg.name not in nodes:
        return None, None
    value = nodes[specs[0].arg.name].meta.get("val")
    if not isinstance(value, torch.Tensor) or value.dim() != 4:
        return None, None
    dims = [d if isinstance(d, int) else None for d in value.shape]
    shape = tuple(dims[1:]) if all(d is not None for d in dims[1:]) else None
    return shape, dims[0]


def load_exported(path: Path) -> tuple[FrozenNet, tuple[int, ...] | None]:
    """The checked archive's module, wrapped, with the input shape it was exported for."""
    check_archive(path)
    try:
        program = torch.export.load(str(path))
    except Exception as exc:
        raise ModelLoadError(
            f"{path.name} is a torch.export archive that torch "
            f"{torch.__version__} cannot load: {str(exc).splitlines()[0]} "
            "(export it again with this torch version)"
        ) from exc
    shape, batch = input_shape_and_batch(program)
    return FrozenNet(program.module(), batch), shape
