"""Draw advstudio's application icon with Pillow and write it in the formats the installers need.

    uv run python packaging/make_icon.py

Writes ``resources/icons/advstudio.png`` (512 px), ``advstudio-256.png`` (the Linux menu icon),
``advstudio.ico`` (Windows: 16-256 px) and ``advstudio.icns`` (macOS). The picture is drawn from
code, not from any data set: a pixel-art digit 7 on a dark tile, a few of its pixels flipped to
the red / blue of the perturbation colour map (an adversarial example in one glyph). Deterministic:
running it again gives the same files.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "resources" / "icons"

# 8 x 8 pixel-art "7"; 1 = ink, 2 = ink pushed up (red), 3 = background pushed down (blue)
GLYPH = [
    "00000000",
    "01112110",
    "00000110",
    "00003100",
    "00001100",
    "00021000",
    "00310000",
    "00000000",
]
COLOURS = {
    "0": None,
    "1": (236, 240, 245, 255),
    "2": (230, 75, 60, 255),
    "3": (60, 120, 220, 255),
}


def draw(size: int = 1024) -> Image.Image:
    img = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    margin = size // 16
    d.rounded_rectangle(
        (margin, margin, size - margin, size - margin),
        radius=size // 6,
        fill=(28, 34, 48, 255),
        outline=(90, 110, 140, 255),
        width=size // 64,
    )
    inner = size - 2 * margin
    cell = inner // (len(GLYPH) + 1)
    origin = margin + (inner - cell * len(GLYPH)) // 2
    gap = max(1, cell // 12)
    for r, row in enumerate(GLYPH):
        for c, ch in enumerate(row):
            colour = COLOURS[ch]
            if colour is None:
                continue
            x, y = origin + c * cell, origin + r * cell
            d.rounded_rectangle(
                (x + gap, y + gap, x + cell - gap, y + cell - gap), radius=cell // 6, fill=colour
            )
    return img


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    big = draw(1024)
    big.resize((512, 512), Image.LANCZOS).save(OUT / "advstudio.png", optimize=True)
    big.resize((256, 256), Image.LANCZOS).save(OUT / "advstudio-256.png", optimize=True)
    big.save(
        OUT / "advstudio.ico",
        sizes=[(16, 16), (24, 24), (32, 32), (48, 48), (64, 64), (128, 128), (256, 256)],
    )
    big.save(OUT / "advstudio.icns")
    for f in sorted(OUT.iterdir()):
        print(f"{f.relative_to(ROOT)}: {f.stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
