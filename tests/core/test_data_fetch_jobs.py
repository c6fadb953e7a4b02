"""Every job that reads a data set fetches a torchvision set first, through the one downloader
with progress and Cancel (``fetch_data``), before it reads anything: offline, each says so at
its start instead of reaching torchvision's own silent download."""

from __future__ import annotations

import pytest

from advstudio.core.errors import DownloadError
from advstudio.core.jobkinds import JOB_KINDS, build_config

READERS = [
    "sweep",
    "robust",
    "boundary",
    "defence-eval",
    "patch",
    "universal",
    "evaluate",
    "train",
    "vat",
    "detector",
    "gan",
    "poison",
]


def test_every_kind_with_a_dataset_field_is_listed():
    import dataclasses

    with_data = {
        name
        for name, kind in JOB_KINDS.items()
        if "dataset" in {f.name for f in dataclasses.fields(kind.load()[0])}
    }
    assert with_data == set(READERS)


@pytest.mark.parametrize("kind", [*READERS, "certify-smoothing", "certify-ibp"])
def test_a_torchvision_set_is_fetched_before_anything_is_read(kind, monkeypatch):
    asked = []

    def offline(dataset):
        asked.append(dataset)
        raise DownloadError(f"offline: put the {dataset} files in /somewhere")
        yield  # a generator, as the real one

    monkeypatch.setattr("advstudio.core.models.download.fetch_data", offline)
    field = "data" if kind.startswith("certify") else "dataset"  # the certify jobs' name
    values = {field: "torchvision:mnist", "device": "cpu"}
    if kind == "gan":
        values |= {"image_size": 28, "channels": 1}
    config_class, run = JOB_KINDS[kind].load()
    config = build_config(kind, values)
    with pytest.raises(DownloadError, match="offline"):
        for _ in run(config):
            pass
    assert asked == ["torchvision:mnist"]
