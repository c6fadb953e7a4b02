"""The UI's import graph has no cycles: a tab imports shared modules, never the window."""

from __future__ import annotations

import grimp


def test_no_ui_module_imports_itself_back():
    graph = grimp.build_graph("advstudio")
    ui = {m for m in graph.modules if m.startswith("advstudio.ui") or m == "advstudio.workers"}
    cycles = []
    for importer in sorted(ui):
        for imported in graph.find_modules_directly_imported_by(importer) & ui:
            back = graph.find_shortest_chain(importer=imported, imported=importer)
            if back:
                cycles.append(" -> ".join((importer, *back)))
    assert cycles == []
