"""`--proxy-holdout`: the proxy's images set aside, so that validation figures are read on images it never saw."""

import pandas as pd
import pytest
import torch

from mdp_prune.cli import main
from mdp_prune.config import RunConfig
from mdp_prune.experiments.imp import Setup, run_imp
from mdp_prune.planners.proxies import Retrainer
from mdp_prune.store import paths

HOLDOUT = 40  # of digits' 120 validation images


def _holdout(tiny, **dotted):
    return tiny(**{"train.proxy_holdout": HOLDOUT, **dotted})


def test_the_held_out_images_are_the_proxys_alone_and_validation_keeps_the_rest(tiny):
    shared, held = Setup(tiny()).splits, Setup(_holdout(tiny)).splits
    assert torch.equal(held.proxy_x, shared.val_x[:HOLDOUT]) and torch.equal(held.proxy_y, shared.val_y[:HOLDOUT])
    assert torch.equal(held.val_x, shared.val_x[HOLDOUT:]) and len(held.val_y) == len(shared.val_y) - HOLDOUT
    assert held.n_proxy_examples == HOLDOUT and shared.n_proxy_examples == len(shared.val_y)
    # the pruned proxy's subset and a retraining proxy's validation figure: the proxy's images in both cases
    x, y = held.proxy_images(25)
    assert torch.equal(x, shared.val_x[:25]) and torch.equal(y, shared.val_y[:25])
    assert torch.equal(shared.proxy_images(25)[0], shared.val_x[:25])  # without a holdout: validation's first
    model = Setup(tiny()).model()
    retrainer = Retrainer(model, model.state_dict(), model.state_dict(), held, tiny().train, torch.zeros(1))
    assert torch.equal(retrainer.splits.val_x, held.proxy_x) and torch.equal(retrainer.splits.test_x, held.test_x)


def test_a_holdout_changes_validation_figures_only(tmp_path, tiny):
    """Training never reads validation: the same tickets and test accuracies, other validation accuracies."""
    shared = pd.read_csv(run_imp(tiny(), tmp_path, progress=False) / paths.ROUNDS)
    held_run = run_imp(_holdout(tiny), tmp_path, progress=False)
    held = pd.read_csv(held_run / paths.ROUNDS)
    assert held_run.name != run_imp(tiny(), tmp_path, progress=False).name  # its own folder, and dense round
    for column in ("weights_remaining", "test_accuracy", "train_iterations"):
        assert held[column].tolist() == shared[column].tolist(), column
    assert held["val_accuracy"].tolist() != shared["val_accuracy"].tolist()


def test_a_planner_run_with_a_holdout_plans_resumes_and_is_named_apart(tmp_path, tiny):
    config = _holdout(tiny, **{"prune.planner": "qlearning", "qlearning.budget": "lt", "qlearning.episodes": 20,
                               "qlearning.proxy_examples": HOLDOUT}, rounds=2)
    run = run_imp(config, tmp_path, progress=False)
    rounds = pd.read_csv(run / paths.ROUNDS)
    assert len(rounds) == 3 and rounds["weights_remaining"].is_monotonic_decreasing
    assert config.hash() != config.replace(**{"train.proxy_holdout": 0}).hash()
    assert RunConfig().hash() == RunConfig().replace(**{"train.proxy_holdout": 0}).hash()  # the default names nothing


@pytest.mark.parametrize("argv,needle", [
    (["--proxy-holdout", "120"], "--proxy-holdout 120 leaves no validation examples"),
    (["--proxy-holdout", "-1"], "--proxy-holdout must be non-negative"),
    (["--proxy-holdout", "40", "--planner", "qlearning"], "--proxy-examples 1000 is more than the 40"),
])
def test_a_bad_holdout_is_one_line_and_exit_2(capsys, tmp_path, argv, needle):
    code = main(["run", "--model", "mlp", "--hidden-sizes", "16", "--train-iterations", "20", "--quiet",
                 "--device", "cpu", "--out", str(tmp_path), *argv])
    err = capsys.readouterr().err.strip()
    assert code == 2 and needle in err and len(err.splitlines()) == 1
    assert not any(tmp_path.iterdir())


def test_the_planner_reads_only_the_proxys_images(tmp_path, tiny, monkeypatch):
    """Scrambling the held-out validation labels leaves round 1's plan as it was; scrambling the proxy's changes it."""
    from dataclasses import replace

    from mdp_prune.engine import data

    config = _holdout(tiny, **{"prune.planner": "qlearning", "qlearning.budget": "lt", "qlearning.anchor_z": 0.0,
                               "qlearning.episodes": 60, "qlearning.proxy_examples": HOLDOUT}, rounds=1)
    original = data.load("digits")

    def allocation(name, val_y):
        monkeypatch.setitem(data._CACHE, ("digits", ""), replace(original, val_y=val_y))
        rounds = pd.read_csv(run_imp(config, tmp_path / name, progress=False) / paths.ROUNDS)
        return rounds.filter(like="remaining:").iloc[1].tolist()

    scrambled = lambda y: (y + 1) % 10  # noqa: E731 - every label wrong
    labels = original.val_y
    clean = allocation("clean", labels)
    assert allocation("held_out", torch.cat([labels[:HOLDOUT], scrambled(labels[HOLDOUT:])])) == clean
    assert allocation("proxy", torch.cat([scrambled(labels[:HOLDOUT]), labels[HOLDOUT:]])) != clean
