"""docs/ARCHITECTURE.md stays true: every file or folder it names in backticks exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "ARCHITECTURE.md"


def named_paths(text: str) -> list[str]:
    """Backticked repository paths: they hold a slash, or end in a file suffix; placeholders
    such as ``<name>`` and dotted module names are not paths."""
    found = []
    for token in re.findall(r"`([^`\s]+)`", text):
        token = token.split("'")[0]
        if "<" in token or token.startswith(("-", "python", "uv")):
            continue
        if "/" in token or re.search(r"\.(py|md|toml)$", token):
            found.append(token.rstrip("/"))
    return found


def test_the_architecture_doc_names_only_paths_that_exist():
    paths = named_paths(DOC.read_text(encoding="utf-8"))
    assert len(paths) >= 25, paths  # the map and the three recipes
    missing = [p for p in paths if not (ROOT / p).exists()]
    assert missing == []


def test_the_readme_points_to_the_architecture_doc():
    assert "docs/ARCHITECTURE.md" in (ROOT / "README.md").read_text(encoding="utf-8")
