"""Data-parallel jobs under ``torchrun``: one process per GPU (or per CPU share), each
training on its rows of every batch, gradients averaged by ``DistributedDataParallel``::

    uv run torchrun --nproc-per-node 4 -m advstudio.cli config.toml

The CLI calls :func:`init` (NCCL on GPUs, gloo on CPUs) and :func:`destroy`; the training jobs
(``train``, ``vat``, ``gan``, the victim of ``poison``) ask :func:`world` and use the helpers
below. Without a process group (the app, a notebook, a plain ``advstudio-run``) every helper
returns its input unchanged: the single-process path does no extra work.

A data-parallel run makes the same updates as a single-process run with the same *global*
batch (``batch_size``), up to float rounding:

- every process draws the same random numbers for the whole batch (data order, noise, random
  starts, dropout masks: same seeds, same order) and keeps its own rows, a contiguous block
  (:class:`Shard`); so the generators stay in step and checkpoints hold global state;
- each process's loss is the mean over its rows times :attr:`Shard.weight` (its rows x
  processes / batch), and DDP averages the gradients, so the update follows the gradient of the
  whole batch's mean also when the batch does not divide evenly among the processes;
- BatchNorm layers use the whole batch's statistics: ``nn.SyncBatchNorm`` on GPUs,
  :class:`CpuSyncBatchNorm` on CPUs (torch's accepts GPU tensors only);
- ``nn.Dropout`` layers draw the whole batch's mask and keep their rows (:class:`ShardedDropout`);
- logged metrics are reduced (:func:`batch_mean`, :func:`gather_rows`) to the whole batch's.

The evaluation jobs (``sweep``, ``robust``) shard their *images* instead: each process takes a
contiguous block of the job's batches (:func:`shard` over the batch count), attacks them with the
seeds a single process would use for those batches (seeded by the batch's place in the whole
job, never by rank) and :func:`gather_objects` brings every block's per-image results to every
process, so the result is the single process's, image for image.

Only rank 0 writes (run store, progress, checkpoints, weights); checkpoints hold the plain
modules' state dicts (no ``module.`` prefix) and the global step, so a checkpoint written by N
processes resumes on any number of them.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from advstudio.core.errors import ConfigError

T = TypeVar("T")


@dataclass(frozen=True)
class World:
    """The processes of a run: ``size`` in all, this one ``rank`` (``local_rank`` on its node)."""

    size: int = 1
    rank: int = 0
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Whether this is the process that records, prints and writes files (rank 0)."""
        return self.rank == 0


def _active() -> bool:
    return dist.is_available() and dist.is_initialized()


def env_world() -> World:
    """The world ``torchrun`` describes in ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``
    (a single process when they are absent)."""
    try:
        return World(
            int(os.environ.get("WORLD_SIZE", "1")),
            int(os.environ.get("RANK", "0")),
            int(os.environ.get("LOCAL_RANK", "0")),
        )
    except ValueError as exc:
        raise ConfigError(
            f"bad torchrun environment (WORLD_SIZE, RANK, LOCAL_RANK): {exc}"
        ) from None


def world() -> World:
    """The current process group's world; a single process when there is none."""
    if not _active():
        return World()
    return World(dist.get_world_size(), dist.get_rank(), env_world().local_rank)


def is_main() -> bool:
    """True in a single process and in rank 0 of a data-parallel run."""
    return not _active() or dist.get_rank() == 0


def rank_device(preference: str = "auto") -> str:
    """The device this process of a ``torchrun`` run trains on: its own GPU (the one numbered
    by its local rank) for ``"auto"`` on a GPU machine or any ``"cuda..."``, else the CPU."""
    local = env_world().local_rank
    if preference.startswith("mps"):
        raise ConfigError(
            "data-parallel training runs on CUDA GPUs (NCCL) or CPUs (gloo), not "
            'on MPS; set device = "cpu" or run a single process'
        )
    cuda = preference.startswith("cuda") or (
        preference in ("", "auto") and torch.cuda.is_available()
    )
    if not cuda:
        return "cpu"
    count = torch.cuda.device_count()
    if count == 0:
        raise ConfigError(
            f"device {preference!r} needs a GPU, but none is visible here; "
            'set device = "cpu" to train on CPU processes'
        )
    if local >= count:
        raise ConfigError(
            f"process {local} of this node has no GPU of its own ({count} "
            f"visible); start at most --nproc-per-node {count}"
        )
    return f"cuda:{local}" if count > 1 else "cuda"


def init(preference: str = "auto") -> str:
    """Join the process group ``torchrun`` set up (NCCL for GPUs, gloo for CPUs) and return the
    device this process trains on (:func:`rank_device`); a single process: ``preference``."""
    env = env_world()
    if env.size <= 1 or _active():
        return preference if env.size <= 1 else rank_device(preference)
    device = rank_device(preference)
    if device.startswith("cuda"):
        index = torch.device(device).index or 0
        torch.cuda.set_device(index)
        dist.init_process_group("nccl", device_id=torch.device("cuda", index))
    else:
        dist.init_process_group("gloo")
    return device


def barrier() -> None:
    if _active():
        dist.barrier()


def destroy() -> None:
    """Leave the process group (nothing to do without one)."""
    if _active():
        dist.destroy_process_group()


# ----------------------------------------------------------------------------- batches


@dataclass(frozen=True)
class Shard:
    """This process's rows ``start:stop`` of a global batch of ``total`` items: a contiguous
    block, sizes differing by at most one between processes (earlier ranks get the extra)."""

    start: int
    stop: int
    total: int
    processes: int = 1

    @property
    def size(self) -> int:
        return self.stop - self.start

    @property
    def single(self) -> bool:
        """Whether there is one process only (it takes the whole batch)."""
        return self.processes == 1

    @property
    def weight(self) -> float:
        """Factor on this process's mean loss so that DDP's average of the gradients is the
        gradient of the whole batch's mean (1.0 when the batch divides evenly)."""
        return self.size * self.processes / self.total

    def take(self, batch: Any) -> Any:
        """This process's rows of ``batch`` (the batch itself in a single process)."""
        return batch if self.single else batch[self.start : self.stop]

    def scale(self, loss: torch.Tensor) -> torch.Tensor:
        """``loss`` (a mean over this process's rows) times :attr:`weight`, for ``backward``."""
        return loss if self.weight == 1.0 else loss * self.weight


def shard(total: int, rank: int | None = None, processes: int | None = None) -> Shard:
    """The rows of a global batch of ``total`` items that process ``rank`` of ``processes``
    (default: this process of this world) trains on."""
    if rank is None or processes is None:
        w = world()
        rank = w.rank if rank is None else rank
        processes = w.size if processes is None else processes
    base, extra = divmod(total, processes)
    start = rank * base + min(rank, extra)
    return Shard(start, start + base + int(rank < extra), total, processes)


def check_batch(size: int, name: str = "batch_size") -> None:
    """:class:`ConfigError` unless every process gets at least one item of a batch of ``size``."""
    processes = world().size
    if size < processes:
        raise ConfigError(
            f"{name} {size} is smaller than the number of processes "
            f"({processes}): each trains on its share of every batch; allowed: "
            f">= {processes}"
        )


def batch_mean(values: torch.Tensor, part: Shard) -> torch.Tensor:
    """Means over this process's rows -> the means over the whole batch (every process gets
    them). ``values``: a 1-d tensor of such means; a single process gets it back unchanged."""
    if part.single:
        return values
    out = values * (part.size / part.total)
    dist.all_reduce(out)
    return out


def gather_rows(rows: torch.Tensor, part: Shard) -> torch.Tensor:
    """Every process's rows, concatenated in rank order: the whole batch (for metrics that are
    not means, e.g. the diversity of a batch of samples). No gradient."""
    if part.single:
        return rows
    n = part.processes
    sizes = [shard(part.total, r, n).size for r in range(n)]
    padded = rows.new_zeros((max(sizes), *rows.shape[1:]))
    padded[: part.size] = rows.detach()
    pieces = [torch.empty_like(padded) for _ in range(n)]
    dist.all_gather(pieces, padded)
    return torch.cat([p[:s] for p, s in zip(pieces, sizes)])


def broadcast_object(value: T) -> T:
    """Rank 0's ``value`` on every process (e.g. data built with nondeterministic GPU kernels,
    which must be the same everywhere). Picklable values only."""
    if not _active():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_objects(value: T) -> list[T]:
    """Every process's ``value``, in rank order, on every process (a single process gets
    ``[value]``): how the evaluation jobs (sweep, robust accuracy) collect their per-image
    results. Picklable values only."""
    if not _active():
        return [value]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, value)
    return out


def from_main(load: Callable[[], T]) -> T:
    """``load()`` run by rank 0 alone, its result sent to every process: for files that only
    rank 0 is sure to see (a checkpoint it wrote on its node's disk). A single process just
    calls ``load()``."""
    if not _active():
        return load()
    return broadcast_object(load() if is_main() else None)


# ----------------------------------------------------------------------------- modules


@dataclass(frozen=True)
class _Rows:
    blocks: tuple[slice, ...]
    total: int


_rows: _Rows | None = None


@contextlib.contextmanager
def sharded(part: Shard, parts: int = 1) -> Iterator[None]:
    """Tell :class:`ShardedDropout` layers which rows of the whole batch the next training pass
    holds: this process's rows of ``parts`` global batches of ``part.total`` concatenated (the
    FGSM mix trains on ``cat([x, x_adv])``: ``parts=2``). No-op in a single process."""
    global _rows
    if part.single:
        yield
        return
    saved = _rows
    _rows = _Rows(
        tuple(slice(part.start + k * part.total, part.stop + k * part.total) for k in range(parts)),
        part.total * parts,
    )
    try:
        yield
    finally:
        _rows = saved


class ShardedDropout(nn.Dropout):
    """``nn.Dropout`` for data-parallel training: inside :func:`sharded` it draws the mask of
    the whole batch (the same call, shape and generator state as a single process makes, so
    the same mask) and applies this process's rows of it. Elsewhere a plain dropout."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = _rows
        if not self.training or self.p == 0 or rows is None:
            return super().forward(x)
        ones = torch.ones((rows.total, *x.shape[1:]), dtype=x.dtype, device=x.device)
        noise = F.dropout(ones, self.p, True)  # 0 or 1 / (1 - p), as dropout multiplies
        mask = (
            noise[rows.blocks[0]]
            if len(rows.blocks) == 1
            else torch.cat([noise[b] for b in rows.blocks])
        )
        return x * mask


class _AllReduceSum(torch.autograd.Function):
    """Sum over processes; the gradient of each process's input is the sum of the gradients
    (the loss being the sum of every process's loss)."""

    @staticmethod
    def forward(ctx: Any, t: torch.Tensor) -> torch.Tensor:
        t = t.clone()
        dist.all_reduce(t)
        return t

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


class CpuSyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm whose training statistics span every process's rows, for CPUs (gloo): the
    role ``nn.SyncBatchNorm`` plays on GPUs. Two passes (the mean, then the variance around
    it), like BatchNorm on the CPU. Outside a process group, or in eval mode, plain BatchNorm.
    Same parameters and buffers as the layer it replaces, so state dicts are unchanged."""

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected at least 2-d input (N, C, ...), got {x.dim()}-d")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and _active() and dist.get_world_size() > 1):
            return super().forward(x)
        self._check_input_dim(x)
        dims = [0, *range(2, x.dim())]
        shape = (1, -1, *([1] * (x.dim() - 2)))
        local = x.numel() // x.shape[1]
        sums = _AllReduceSum.apply(torch.cat([x.sum(dims), x.new_tensor([local])]))
        count = sums[-1].detach()
        mean = sums[:-1] / count
        centred = x - mean.view(shape)
        var = _AllReduceSum.apply((centred * centred).sum(dims)) / count
        y = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                momentum = (
                    1.0 / float(self.num_batches_tracked)
                    if self.momentum is None
                    else self.momentum
                )
                unbiased = var.detach() * (count / (count - 1).clamp_min(1))
                self.running_mean.lerp_(mean.detach(), momentum)
                self.running_var.lerp_(unbiased, momentum)
        return y


def _replace(module: nn.Module, convert) -> None:
    """Swap every child for which ``convert`` returns a module, in place, at any depth."""
    for name, child in module.named_children():
        new = convert(child)
        if new is not None:
            setattr(module, name, new)
        else:
            _replace(child, convert)


def _sync_bn(bn: nn.modules.batchnorm._BatchNorm, cls: type) -> nn.Module:
    new = cls(bn.num_features, bn.eps, bn.momentum, bn.affine, bn.track_running_stats)
    if bn.affine:
        new.weight, new.bias = bn.weight, bn.bias
    new.running_mean, new.running_var = bn.running_mean, bn.running_var
    new.num_batches_tracked = bn.num_batches_tracked
    new.train(bn.training)
    return new


def sync_layers(module: nn.Module, device: str | torch.device) -> nn.Module:
    """``module`` with its BatchNorm layers synchronised (``nn.SyncBatchNorm`` on a GPU,
    :class:`CpuSyncBatchNorm` on the CPU) and its ``nn.Dropout`` layers made
    :class:`ShardedDropout`, in place; parameters and buffers are kept, so are state dicts.
    :func:`data_parallel` does this; a single process needs nothing of it."""
    bn_cls = nn.SyncBatchNorm if torch.device(device).type == "cuda" else CpuSyncBatchNorm

    def convert(child: nn.Module) -> nn.Module | None:
        if type(child) is nn.Dropout:
            new = ShardedDropout(child.p, child.inplace)
            new.train(child.training)
            return new
        if isinstance(child, nn.modules.batchnorm._BatchNorm) and not isinstance(
            child, (nn.SyncBatchNorm, CpuSyncBatchNorm)
        ):
            return _sync_bn(child, bn_cls)
        return None

    _replace(module, convert)
    return module


def data_parallel(module: nn.Module, device: str | torch.device) -> nn.Module:
    """The module to run training passes through: in a single process ``module`` itself;
    in a data-parallel run a ``DistributedDataParallel`` around it, after converting its
    BatchNorm and dropout layers in place (see the module doc).

    The wrapper shares ``module``'s parameters: keep using ``module`` for state dicts,
    attacks, evaluation and sampling, which need no gradient sync (DDP expects every forward
    through it to be followed by a backward that reaches all its parameters)."""
    if not _active() or dist.get_world_size() == 1:
        return module
    device = torch.device(device)
    sync_layers(module, device)
    ids = (
        [device.index if device.index is not None else torch.cuda.current_device()]
        if device.type == "cuda"
        else None
    )
    # BatchNorm buffers stay equal on every process (synchronised statistics): no broadcast
    # before every forward (DDP still syncs them once, with the parameters, when it starts)
    return nn.parallel.DistributedDataParallel(module, device_ids=ids, forward_sync_buffers=False)
