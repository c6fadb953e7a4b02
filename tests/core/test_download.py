"""Weight downloads as a job: progress, atomic write, checksum, cancel, offline message."""

from __future__ import annotations

import hashlib

import pytest

from advstudio.core.errors import DownloadError
from advstudio.core.jobs import Progress, drive
from advstudio.core.models import download as dl


@pytest.fixture
def source(tmp_path, monkeypatch):
    monkeypatch.setattr(dl, "CHUNK", 1000)
    data = bytes(range(256)) * 40  # 10,240 bytes
    path = tmp_path / "weights-0123abcd.pth"
    path.write_bytes(data)
    return path, data


def test_download_with_progress(source, tmp_path):
    path, data = source
    dest = tmp_path / "cache" / "w.pth"
    digest = hashlib.sha256(data).hexdigest()[:8]
    out = drive(dl.download(dl.DownloadConfig(path.as_uri(), str(dest), digest)), keep_events=True)
    assert out.result == dest and dest.read_bytes() == data
    progress = [e for e in out.events if isinstance(e, Progress)]
    assert progress[-1].done == progress[-1].total == len(data)
    assert len(progress) >= 10
    assert not list(dest.parent.glob("*.part"))


def test_checksum_mismatch_leaves_nothing(source, tmp_path):
    path, _ = source
    dest = tmp_path / "w.pth"
    with pytest.raises(DownloadError, match="corrupt"):
        drive(dl.download(dl.DownloadConfig(path.as_uri(), str(dest), "ffffffff")))
    assert not dest.exists() and not list(tmp_path.glob("*.part"))


def test_cancel_midway_leaves_no_partial_file(source, tmp_path):
    path, _ = source
    dest = tmp_path / "w.pth"
    job = dl.download(dl.DownloadConfig(path.as_uri(), str(dest)))
    next(job)
    next(job)
    assert (tmp_path / "w.pth.part").exists()
    job.close()
    assert not dest.exists() and not (tmp_path / "w.pth.part").exists()


def test_offline_gives_a_clear_message(tmp_path):
    config = dl.DownloadConfig(
        "http://127.0.0.1:9/resnet18.pth", str(tmp_path / "r.pth"), timeout_s=5
    )
    with pytest.raises(DownloadError, match="Are you online"):
        drive(dl.download(config))


def test_zoo_download_config_points_at_the_hub_cache():
    cfg = dl.weights_download_config("resnet18")
    assert cfg.url.endswith(".pth") and cfg.dest.endswith(cfg.url.rsplit("/", 1)[-1])
    assert len(cfg.sha256_prefix) >= 8
