"""The Attack tab's sweep carries the current model file's card into its job config, so a card
given in the dialog for this session only reaches the job, and the recorded run holds it (a
rerun loads the model the same way)."""

from __future__ import annotations

import torch

from advstudio.core.jobkinds import build_config
from advstudio.core.models.card import ModelCard, card_path
from advstudio.core.models.registry import load_model
from tests.core.colour_data import CLASSES, ColourNet, colour_folder


def test_the_sweep_records_a_session_card_of_a_card_less_file(qtbot, lab, settings, tmp_path):
    from advstudio.ui.attack.sweep_panel import SweepPanel

    torch.manual_seed(0)
    path = tmp_path / "net.pt"
    torch.jit.trace(ColourNet().eval(), torch.zeros(1, 3, 32, 32)).save(str(path))
    assert not card_path(path).exists()  # the card lives in this session only
    card = ModelCard((3, 32, 32), tuple(CLASSES))
    key = f"file:{path}"
    lab.state.set_model(key, load_model(key, "cpu", card=card))
    panel = SweepPanel(lab.state, lab.jobs, settings)
    qtbot.addWidget(panel)
    panel.data.use_folder(str(colour_folder(tmp_path / "shapes", per_class=1, junk=False)))
    panel.n_images.setValue(10)
    panel.epsilons.setText("0, 0.05")
    assert panel.config().card == card
    with qtbot.waitSignal(panel.sweep_done, timeout=60_000) as blocker:
        panel.start()
    assert blocker.args[0].config.card == card and blocker.args[0].n_images == 10
    qtbot.waitUntil(lambda: panel.job.worker.is_done, timeout=10_000)
    [run] = lab.jobs.store.list_runs()
    kind, values = lab.jobs.store.rerun_config(run.id)
    assert build_config(kind, values).card == card

    lab.state.set_model("digits-cnn", load_model("digits-cnn", "cpu"))
    assert lab.state.model_card is None  # a built-in has its own card
