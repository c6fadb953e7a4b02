"""Data-parallel training (torchrun, DDP, gloo on the CPU): shards, the single-process no-ops,
gradients and metrics equal to one process's, rank 0 alone writing, and whole jobs run by
``torchrun`` matching one process and resuming across process counts.

Tolerances: one step's gradients agree to float rounding (1e-6). Over several Adam steps the
rounding differences of a split batch grow (Adam divides by the root of tiny second moments, and
a ReLU whose input sits within rounding of zero switches), so weights after a few steps are
compared at 1e-4 (a tenth of one Adam step at lr 1e-3) for the classifier and 2e-3 for the DCGAN
(10 steps of lr 2e-4), and the DCGAN's first-step metrics at 1e-5 (relative) before the first
update, 1e-3 after it.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn

from advstudio.core import distributed
from advstudio.core.distributed import Shard, World, shard
from advstudio.core.errors import ConfigError

# The spawned processes import this module: the jobs are imported inside the (slow) tests that
# use them, so that a process of the fast test imports little more than torch.

# ----------------------------------------------------------------------------- launching


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, size: int, port: int, fn, args: tuple) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        WORLD_SIZE=str(size),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
    )
    torch.set_num_threads(1)
    assert distributed.init("cpu") == "cpu"
    try:
        fn(*args)
    finally:
        distributed.destroy()


def _spawn(fn, *args, processes: int = 2, timeout: float = 120.0) -> None:
    """Run ``fn(*args)`` in ``processes`` fresh processes joined in a gloo group."""
    ctx = mp.start_processes(
        _worker,
        args=(processes, _free_port(), fn, args),
        nprocs=processes,
        join=False,
        start_method="spawn",
    )
    deadline = time.monotonic() + timeout
    while not ctx.join(timeout=1.0):
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.kill()
            pytest.fail(f"the {processes} processes did not finish in {timeout:.0f} s")


def _torchrun(
    tmp_path: Path, name: str, config: dict, *args: str, processes: int = 2
) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc-per-node N -m advstudio.cli config`` (a free port of its
    own), one thread per process; the run store is ``tmp_path/store``."""
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(config))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ADVSTUDIO_HOME": str(tmp_path / "home")}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={processes}",
        "-m",
        "advstudio.cli",
        str(path),
        "--store",
        str(tmp_path / "store"),
        "--quiet",
        *args,
    ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()  # plain state dicts: no "module." prefix
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a)


# ----------------------------------------------------------------------------- fast: one process


@pytest.mark.parametrize("processes", [1, 2, 3, 4])
def test_shards_are_contiguous_blocks_covering_the_batch(processes):
    for total in range(processes, 40):
        parts = [shard(total, r, processes) for r in range(processes)]
        assert parts[0].start == 0 and parts[-1].stop == total
        assert all(a.stop == b.start for a, b in zip(parts, parts[1:]))
        assert max(p.size for p in parts) - min(p.size for p in parts) <= 1
        # weights make the mean of per-process weighted means the whole batch's mean
        values = torch.arange(total, dtype=torch.float64) ** 2
        mean = sum(p.weight * p.take(values).mean() for p in parts) / processes
        assert mean == pytest.approx(values.mean().item())
        if total % processes == 0:
            assert all(p.weight == 1.0 for p in parts)


def test_a_single_process_is_left_alone():
    assert distributed.world() == World() and distributed.is_main()
    net = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Dropout(0.5))
    assert distributed.data_parallel(net, "cpu") is net
    assert [type(m) for m in net] == [nn.Linear, nn.BatchNorm1d, nn.Dropout]
    part = shard(10)
    assert part == Shard(0, 10, 10, 1) and part.single
    x = torch.randn(10, 3)
    loss = x.mean()
    assert part.take(x) is x and part.scale(loss) is loss
    row = x[0]
    assert distributed.batch_mean(row, part) is row
    assert distributed.gather_rows(x, part) is x
    assert distributed.from_main(lambda: 42) == 42 and distributed.broadcast_object(x) is x
    distributed.check_batch(1)
    distributed.barrier()
    distributed.destroy()


def test_torchrun_environment_and_devices(monkeypatch):
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(key, raising=False)
    assert distributed.env_world() == World(1, 0, 0)
    assert distributed.init("auto") == "auto"  # no torchrun: nothing to join
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert distributed.env_world() == World(4, 3, 1) and not distributed.env_world().main
    assert distributed.rank_device("cpu") == "cpu"
    with pytest.raises(ConfigError, match="not on MPS"):
        distributed.rank_device("mps")
    if not torch.cuda.is_available():
        assert distributed.rank_device("auto") == "cpu"
        with pytest.raises(ConfigError, match="none is visible"):
            distributed.rank_device("cuda")
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ConfigError, match="WORLD_SIZE"):
        distributed.env_world()


def test_other_ranks_print_and_record_nothing(tmp_path, capsys):
    """The CLI's ``run_job`` as rank 1 runs the job but writes no output, store or summary."""
    from advstudio.cli import EXIT_OK, run_job
    from advstudio.core.jobkinds import JOB_KINDS, build_config
    from advstudio.core.runs import RunStore

    config = build_config("evaluate", {"dry_run": True, "batch_size": 4})
    _, run = JOB_KINDS["evaluate"].load()
    store = RunStore.open(tmp_path / "store")
    assert run_job("evaluate", config, run, tmp_path / "out", store=store, rank=1) == EXIT_OK
    assert not (tmp_path / "out").exists() and store.list_runs() == []
    assert capsys.readouterr().out == ""


# ----------------------------------------------------------------------------- two processes


def _tiny_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 3)
    )


def _step(net: nn.Module, parallel: nn.Module) -> dict:
    """One forward/backward of a batch of 7 (4 + 3 rows on two processes: unequal shards),
    the gradients averaged over the processes as DDP averages them."""
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(7, 6, generator=g), torch.randint(0, 3, (7,), generator=g)
    part = shard(len(x))
    with torch.random.fork_rng(devices=[]), distributed.sharded(part):
        torch.manual_seed(2)  # the dropout masks
        logits = parallel(part.take(x))
    loss = F.cross_entropy(logits, part.take(y))
    part.scale(loss).backward()
    if not part.single and not isinstance(parallel, nn.parallel.DistributedDataParallel):
        for p in net.parameters():
            dist.all_reduce(p.grad)
            p.grad /= part.processes
    hits = (logits.detach().argmax(1) == part.take(y)).float().mean()
    return {
        "grads": {k: p.grad.clone() for k, p in net.named_parameters()},
        "metrics": distributed.batch_mean(torch.stack([loss.detach(), hits]), part),
        "logits": distributed.gather_rows(logits.detach(), part),
        "running_var": net[1].running_var.clone(),
    }


def _step_in_parallel(out: str) -> None:
    net = distributed.sync_layers(_tiny_net(), "cpu")
    assert isinstance(net[1], distributed.CpuSyncBatchNorm)
    assert isinstance(net[3], distributed.ShardedDropout)
    # no DDP here: building one imports torch._dynamo (5 s a process); the jobs' tests use it
    result = _step(net, net)
    rank = distributed.world().rank
    assert distributed.from_main(lambda: rank) == 0
    torch.save(result, f"{out}.{rank}")


def test_two_processes_compute_one_process_gradients_and_metrics(tmp_path):
    """Synchronised BatchNorm + whole-batch dropout masks + loss weights + averaged gradients:
    the gradients of a 4 + 3 split equal the whole batch's; metrics and rows are the whole
    batch's on every process."""
    net = _tiny_net()
    expected = _step(net, net)
    _spawn(_step_in_parallel, str(tmp_path / "step"))
    for rank in range(2):
        got = torch.load(tmp_path / f"step.{rank}")
        assert _max_diff(got["grads"], expected["grads"]) < 1e-6
        torch.testing.assert_close(got["metrics"], expected["metrics"])
        torch.testing.assert_close(got["logits"], expected["logits"])
        torch.testing.assert_close(got["running_var"], expected["running_var"])


# ----------------------------------------------------------------------------- whole jobs


def _digit_folder(root: Path, per_class: int = 8) -> Path:
    import numpy as np
    from PIL import Image

    from advstudio.core.data import load_digits

    x, y = load_digits("train")
    for c in range(10):
        (root / str(c)).mkdir(parents=True)
        for i, idx in enumerate((y == c).nonzero().flatten()[:per_class].tolist()):
            pixels = (x[idx, 0].numpy() * 255).round().astype(np.uint8)
            Image.fromarray(pixels).save(root / str(c) / f"{i}.png")
    return root


@pytest.mark.slow
def test_train_with_two_processes_equals_one_and_only_rank_0_writes(tmp_path):
    from advstudio.core.defence import TrainConfig, train_classifier
    from advstudio.core.jobs import drive
    from advstudio.core.runs import RunStore

    folder = _digit_folder(tmp_path / "digits")
    values = {
        "kind": "train",
        "dataset": f"folder:{folder}",
        "epochs": 2,
        "batch_size": 27,
        "eval_images": 0,
        "seed": 3,
    }
    config = {
        **values,
        "save_path": str(tmp_path / "two.pt"),
        "checkpoint_path": str(tmp_path / "two.ckpt"),
    }
    started = time.perf_counter()
    done = _torchrun(tmp_path, "train", config, "--out", str(tmp_path / "out"))
    two_s = time.perf_counter() - started
    started = time.perf_counter()
    one = drive(
        train_classifier(TrainConfig(**{k: v for k, v in values.items() if k != "kind"}))
    ).result
    one_s = time.perf_counter() - started
    two = torch.load(tmp_path / "two.pt")
    diff = _max_diff(two, one.state_dict)
    print(
        f"\ntrain: 2 processes {two_s:.1f} s (with start-up), 1 process {one_s:.1f} s; "
        f"max |weight difference| {diff:.2g}"
    )
    assert diff < 1e-4
    # batch 27 of 64 images: 2 full steps (14 + 13 rows) and a last one of 10 (5 + 5) per epoch
    assert one.history[-1]["step"] == 6
    summary = json.loads(done.stdout)  # one summary: rank 1 printed nothing
    assert summary["result"]["history"][-1]["train_loss"] == pytest.approx(
        one.history[-1]["train_loss"], rel=1e-4
    )
    runs = RunStore.open(tmp_path / "store").list_runs()
    assert [r.id for r in runs] == [summary["run_id"]]  # recorded once, by rank 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["metrics.jsonl", "result.json"]
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix in (".pt", ".ckpt")) == [
        "two.ckpt",
        "two.pt",
    ]


def _gan_values(tmp_path: Path, steps: int, **kw) -> dict:
    return {
        "kind": "gan",
        "arch": "dcgan",
        "batch_size": 16,
        "lr_g": 2e-4,  # the tolerances above are for this rate
        "lr_d": 2e-4,
        "steps": steps,
        "eval_every": 0,
        "preview_rate": 0.0,
        "seed": 1,
        **kw,
    }


def _gan_config(values: dict):
    from advstudio.core.gan.config import GanConfig

    return GanConfig(**{k: v for k, v in values.items() if k != "kind"})


def _first_step(metrics_file: Path) -> dict:
    return json.loads(metrics_file.read_text().splitlines()[0])


@pytest.mark.slow
def test_dcgan_with_two_processes_equals_one_and_resumes_on_either_count(tmp_path):
    """DCGAN (BatchNorm in G and D): 3 steps on 2 processes = 3 steps on 1; a 1-process
    checkpoint continued by 2 processes, and a 2-process one continued by 1, = 5 steps on 1."""
    from advstudio.core.gan.checkpoint import load_checkpoint as load_gan_checkpoint
    from advstudio.core.gan.train import STEP_KEYS, train_gan
    from advstudio.core.jobs import Metrics, drive

    out = drive(train_gan(_gan_config(_gan_values(tmp_path, 5))), keep_events=True)
    reference = out.result.generator_state
    first = next(e.values for e in out.events if isinstance(e, Metrics))
    one_ckpt = tmp_path / "one.ckpt"
    drive(train_gan(_gan_config(_gan_values(tmp_path, 3, checkpoint_path=str(one_ckpt)))))

    two_ckpt = tmp_path / "two.ckpt"
    started = time.perf_counter()
    _torchrun(
        tmp_path,
        "gan3",
        _gan_values(tmp_path, 3, checkpoint_path=str(two_ckpt)),
        "--out",
        str(tmp_path / "out3"),
    )
    two_s = time.perf_counter() - started
    got = _first_step(tmp_path / "out3" / "metrics.jsonl")
    for key in STEP_KEYS:  # those of the G step come after D's first update
        before_update = key in ("loss_d", "d_x", "d_g_z1", "grad_norm_d", "diversity")
        assert got[key] == pytest.approx(first[key], rel=1e-5 if before_update else 1e-3), key
    two = load_gan_checkpoint(two_ckpt)
    assert two["step"] == 3
    diff3 = _max_diff(two["generator"], load_gan_checkpoint(one_ckpt)["generator"])

    # 1 process -> 2 processes
    shutil.copy(one_ckpt, tmp_path / "resume.ckpt")
    _torchrun(
        tmp_path,
        "gan5",
        _gan_values(tmp_path, 5, resume=True, checkpoint_path=str(tmp_path / "resume.ckpt")),
    )
    diff_12 = _max_diff(load_gan_checkpoint(tmp_path / "resume.ckpt")["generator"], reference)
    # 2 processes -> 1 process
    resumed = drive(
        train_gan(_gan_config(_gan_values(tmp_path, 5, resume=True, checkpoint_path=str(two_ckpt))))
    )
    diff_21 = _max_diff(resumed.result.generator_state, reference)
    print(
        f"\ndcgan: 3 steps on 2 processes {two_s:.1f} s (with start-up); max |generator "
        f"weight difference| after 3 steps {diff3:.2g}, resumed 1->2 {diff_12:.2g}, "
        f"2->1 {diff_21:.2g}"
    )
    assert resumed.result.step == 5
    assert max(diff3, diff_12, diff_21) < 2e-3
