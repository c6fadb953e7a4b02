"""Image loading: every mode we promise, every bad input as a typed error."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from advstudio.core import errors
from advstudio.core.images import from_tensor, load_image, save_png, to_tensor


def _png_header_only(path, width, height):
    """A PNG whose header claims width x height (for the size guard; no pixel data)."""

    def chunk(kind, data):
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))
    return path


def test_grayscale_png_keeps_one_channel_and_exact_values(tmp_path):
    arr = np.arange(256, dtype=np.uint8).reshape(16, 16)
    Image.fromarray(arr).save(tmp_path / "g.png")
    img = load_image(tmp_path / "g.png")
    assert img.pixels.shape == (16, 16, 1) and img.pixels.dtype == np.float32
    np.testing.assert_allclose(img.pixels[..., 0], arr / 255.0, atol=1e-7)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "BMP", "WEBP"])
def test_rgb_formats(tmp_path, fmt):
    arr = np.zeros((10, 12, 3), np.uint8)
    arr[..., 0] = 200
    path = tmp_path / f"rgb.{fmt.lower()}"
    Image.fromarray(arr).save(path, format=fmt, **({"quality": 100} if fmt != "BMP" else {}))
    img = load_image(path)
    assert img.pixels.shape == (10, 12, 3)
    assert abs(img.pixels[..., 0].mean() - 200 / 255) < 0.02
    assert img.pixels[..., 1].mean() < 0.02


def test_rgba_is_composited_on_white(tmp_path):
    arr = np.zeros((4, 4, 4), np.uint8)
    arr[0, 0] = (255, 0, 0, 255)  # opaque red
    arr[1, 1] = (0, 0, 0, 0)  # fully transparent
    arr[2, 2] = (0, 0, 0, 128)  # half-transparent black
    Image.fromarray(arr, "RGBA").save(tmp_path / "a.png")
    px = load_image(tmp_path / "a.png").pixels
    np.testing.assert_allclose(px[0, 0], [1, 0, 0], atol=1e-6)
    np.testing.assert_allclose(px[1, 1], [1, 1, 1], atol=1e-6)
    np.testing.assert_allclose(px[2, 2], [127 / 255] * 3, atol=2 / 255)


def test_palette_image_becomes_rgb(tmp_path):
    img = Image.new("P", (5, 5))
    img.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    img.putpixel((2, 2), 1)
    img.save(tmp_path / "p.png")
    px = load_image(tmp_path / "p.png").pixels
    assert px.shape == (5, 5, 3)
    np.testing.assert_allclose(px[2, 2], np.array([10, 200, 30]) / 255, atol=1e-6)


def test_16bit_grayscale_uses_full_range(tmp_path):
    arr = np.array([[0, 32768, 65535]], dtype=np.uint16)
    Image.fromarray(arr).save(tmp_path / "d.png")
    px = load_image(tmp_path / "d.png").pixels
    np.testing.assert_allclose(px[0, :, 0], arr[0] / 65535.0, atol=1e-6)


@pytest.mark.parametrize("mode", ["1", "LA", "CMYK"])
def test_other_modes_load(tmp_path, mode):
    img = Image.new(mode, (6, 7))
    path = tmp_path / ("x.jpg" if mode == "CMYK" else "x.png")
    img.save(path)
    px = load_image(path).pixels
    assert px.shape[:2] == (7, 6) and px.shape[2] in (1, 3)
    assert 0.0 <= px.min() and px.max() <= 1.0


def test_missing_path(tmp_path):
    with pytest.raises(errors.ImageNotFoundError, match="does not exist"):
        load_image(tmp_path / "gone.png")


def test_empty_file(tmp_path):
    (tmp_path / "e.png").write_bytes(b"")
    with pytest.raises(errors.EmptyImageError, match="empty"):
        load_image(tmp_path / "e.png")


def test_not_an_image(tmp_path):
    (tmp_path / "notes.png").write_text("hello, I am text")
    with pytest.raises(errors.NotAnImageError, match="not an image"):
        load_image(tmp_path / "notes.png")


def test_truncated_png(tmp_path):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "t.png")
    data = (tmp_path / "t.png").read_bytes()
    (tmp_path / "t.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(errors.CorruptImageError, match="damaged or truncated"):
        load_image(tmp_path / "t.png")


def test_huge_image_is_refused_before_decoding(tmp_path):
    path = _png_header_only(tmp_path / "huge.png", 20000, 20000)
    with pytest.raises(errors.ImageTooLargeError, match="400 megapixels.*up to 40 megapixels"):
        load_image(path)
    mid = _png_header_only(tmp_path / "big.png", 9000, 9000)  # under Pillow's own bomb limit
    with pytest.raises(errors.ImageTooLargeError, match="9000×9000"):
        load_image(mid)


def test_directory(tmp_path):
    with pytest.raises(errors.NotAnImageError, match="folder"):
        load_image(tmp_path)


def test_errors_are_typed_value_errors():
    assert issubclass(errors.CorruptImageError, errors.ImageLoadError)
    assert issubclass(errors.ImageLoadError, ValueError)
    assert issubclass(errors.ImageNotFoundError, FileNotFoundError)


def test_save_png_roundtrip_is_exact(tmp_path):
    rng = np.random.default_rng(1)
    px = rng.integers(0, 256, (9, 11, 3)).astype(np.float32) / 255
    save_png(px, tmp_path / "o.png")
    np.testing.assert_array_equal(load_image(tmp_path / "o.png").pixels, px)
    assert not list(tmp_path.glob(".*part"))


def test_tensor_roundtrip():
    px = np.random.default_rng(2).random((5, 6, 3), dtype=np.float32)
    x = to_tensor(px)
    assert tuple(x.shape) == (1, 3, 5, 6)
    np.testing.assert_array_equal(from_tensor(x), px)
