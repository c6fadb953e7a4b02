"""Download torchvision weights and data sets as a job, with progress and a clean cancel.

torchvision would download on first use with a terminal progress bar; we fetch the same file into
the same torch.hub cache ourselves so the UI gets progress events, cancel leaves no partial file,
and being offline gives a clear message.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from advstudio.core.errors import DownloadError
from advstudio.core.jobs import Job, Log, Progress

CHUNK = 1 << 16


@dataclass(frozen=True)
class DownloadConfig:
    """Fetch ``url`` to ``dest`` (the torch.hub cache path when empty). ``sha256_prefix``: the
    leading hex digits of the file's SHA-256 (torchvision puts 8 of them in its file names)."""

    url: str
    dest: str
    sha256_prefix: str = ""
    timeout_s: float = 30.0


def weights_download_config(key: str) -> DownloadConfig:
    """The download of a torchvision zoo model's weights (``key`` as in TORCHVISION_ZOO)."""
    from advstudio.core.models.registry import torchvision_weights, weights_path

    url = torchvision_weights(key).url
    stem = url.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    digest = stem.rsplit("-", 1)[-1] if "-" in stem else ""
    is_hex = len(digest) >= 8 and all(c in "0123456789abcdef" for c in digest)
    return DownloadConfig(url, str(weights_path(key)), digest if is_hex else "")


def download(config: DownloadConfig) -> Job[Path]:
    """Stream ``config.url`` into ``config.dest`` atomically; yields Progress in bytes."""
    dest = Path(config.dest)
    if dest.is_file():
        yield Log(f"already downloaded: {dest}")
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    sha = hashlib.sha256()
    try:
        try:
            response = urllib.request.urlopen(config.url, timeout=config.timeout_s)
        except (TimeoutError, urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DownloadError(
                f"could not download {config.url.rsplit('/', 1)[-1]}: {reason}. Are you online? "
                "Built-in models work offline."
            ) from exc
        with response, open(part, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0)
            done = 0
            yield Progress(0, total, f"downloading {dest.name}")
            while True:
                try:
                    chunk = response.read(CHUNK)
                except (TimeoutError, OSError) as exc:
                    raise DownloadError(f"download of {dest.name} interrupted: {exc}") from exc
                if not chunk:
                    break
                out.write(chunk)
                sha.update(chunk)
                done += len(chunk)
                yield Progress(done, total, f"downloading {dest.name}")
        if total and done != total:
            raise DownloadError(f"download of {dest.name} stopped at {done} of {total} bytes")
        if config.sha256_prefix and not sha.hexdigest().startswith(config.sha256_prefix):
            raise DownloadError(f"{dest.name} is corrupt (checksum mismatch); try again")
        os.replace(part, dest)
        return dest
    finally:
        part.unlink(missing_ok=True)


def fetch_data(dataset: str) -> Job[None]:
    """Before a job reads ``dataset``: a torchvision set not yet cached is downloaded here,
    file by file, with Progress in bytes (the status bar's bar and Cancel: cancelling between
    chunks leaves no partial file). Nothing for any other set or a cached one. Offline: a
    :class:`DownloadError` naming the folder where the files may be put by hand."""
    from advstudio.core import distributed
    from advstudio.core.data.sets import (
        DatasetSpec,
        torchvision_cached,
        torchvision_files,
        torchvision_root,
    )

    spec = DatasetSpec.parse(str(dataset))
    if spec.kind != "torchvision":
        return
    if not distributed.is_main():  # under torchrun rank 0 fetches; the others read its files
        distributed.barrier()
        return
    try:
        files = [(url, path) for url, path in torchvision_files(spec.arg) if not path.is_file()]
        if not files or torchvision_cached(spec.arg):
            return
        yield Log(f"downloading the {spec.arg} data set into {torchvision_root()} (once)")
        for url, path in files:
            try:
                yield from download(DownloadConfig(url, str(path), timeout_s=60.0))
            except DownloadError as exc:
                cause = exc.__cause__
                detail = getattr(cause, "reason", None) or cause or exc
                raise DownloadError(
                    f"could not get the {spec.arg} data set ({path.name}): {detail}. It is "
                    "downloaded on first use, so you need to be online once; or put its files "
                    f"in {torchvision_root()} (torchvision's own layout). The bundled digits "
                    "work offline."
                ) from exc
    finally:
        distributed.barrier()
