import subprocess
import sys

import pandas as pd
import pytest

from mdp_prune.cli import main
from mdp_prune.store import paths

TINY = ["--model", "mlp", "--hidden-sizes", "16", "--train-iterations", "20", "--eval-every", "10",
        "--quiet", "--device", "cpu"]


def _error(capsys, argv):
    code = main(argv)
    err = capsys.readouterr().err.strip()
    return code, err


@pytest.mark.parametrize("argv,needle", [
    (["run", "--model", "resnet"], "unknown model 'resnet'"),
    (["run", "--dataset", "imagenet"], "unknown dataset 'imagenet'"),
    (["run", "--planner", "magic"], "unknown planner 'magic'"),
    (["run", "--prune-fc", "1.0"], "--prune-fc must be a fraction in [0, 1)"),
    (["run", "--prune-output", "-0.1"], "--prune-output must be a fraction in [0, 1)"),
    (["run", "--actions", "0,0.5,1.2"], "--actions must be a fraction"),
    (["run", "--rounds", "-1"], "--rounds must be non-negative"),
    (["run", "--rewind-iteration", "1000", "--train-iterations", "1000"], "--rewind-iteration must be in"),
    (["run", "--dataset", "fashion-mnist", "--data-dir", "/nonexistent/fm"], "does not exist"),
    (["run", "--seed", "zero"], "invalid int value"),
    (["export", "/nonexistent/run"], "is not a run folder"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, tmp_path, argv, needle):
    argv = [*argv, "--out", str(tmp_path)] if argv[0] == "run" else argv
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own checks exit directly
        code = exc.code
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert needle in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not any(tmp_path.iterdir())  # nothing was written for a rejected configuration


def test_corrupt_checkpoint_is_reported_and_results_are_kept(capsys, tmp_path):
    assert main(["run", *TINY, "--rounds", "2", "--out", str(tmp_path)]) == 0
    run = next(p for p in tmp_path.iterdir() if p.name.startswith("lt_"))
    before = (run / paths.ROUNDS).read_bytes()
    paths.masks_file(run, 3).write_bytes(b"not a checkpoint")
    capsys.readouterr()
    code, err = _error(capsys, ["run", *TINY, "--rounds", "4", "--out", str(tmp_path)])
    assert code == 2 and "corrupt checkpoint" in err and len(err.splitlines()) == 1
    assert (run / paths.ROUNDS).read_bytes() == before
    assert paths.masks_file(run, 3).read_bytes() == b"not a checkpoint"


def test_preset_sets_the_paper_recipe_and_flags_win():
    from mdp_prune.cli import build_parser, config_from_args

    args = build_parser().parse_args(["run", "--preset", "conv6", "--lr", "0.001"])
    config = config_from_args(args)
    assert config.train.model == "conv6" and config.train.train_iterations == 30_000
    assert config.prune.prune_conv == 0.15 and config.train.lr == 0.001


def test_help_documents_every_option_with_its_default():
    out = subprocess.run([sys.executable, "-m", "mdp_prune", "run", "--help"], capture_output=True, text=True,
                         check=True).stdout
    from mdp_prune.cli import config_fields

    for _, f, _ in config_fields():
        assert "--" + f.name.replace("_", "-") in out
    assert out.count("(default:") >= len(config_fields())


def test_real_process_exit_code_and_export(tmp_path):
    bad = subprocess.run([sys.executable, "-m", "mdp_prune", "run", "--rounds", "-3", "--out", str(tmp_path)],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.strip().startswith("error: --rounds")
    ok = subprocess.run([sys.executable, "-m", "mdp_prune", "run", *TINY, "--rounds", "1", "--out",
                         str(tmp_path)], capture_output=True, text=True, check=True)
    run = ok.stdout.strip()
    assert len(pd.read_csv(f"{run}/rounds.csv")) == 2
    exported = subprocess.run([sys.executable, "-m", "mdp_prune", "export", run, "--round", "1", "--output",
                               str(tmp_path / "t.pt")], capture_output=True, text=True, check=True)
    assert exported.stdout.strip() == str(tmp_path / "t.pt")
