"""Every configuration input (flags, grid files, a run folder's config.json) is checked against one table of
per-field rules: a bad value is one `error: ...` line naming the field or file, exit code 2, never a traceback
later; valid configurations keep their hashes (the run folders' names)."""

from __future__ import annotations

import json
import math

import pytest
import yaml
from sklearn.model_selection import ParameterGrid

from gridsearch.cli import main as grid_main
from gridsearch.grid import load_grid
from gridsearch.grids import GRIDS_DIR, builtin_grids
from mdp_prune.cli import config_fields, guarded, main
from mdp_prune.config import PRESETS, RULES, RunConfig, train_hash
from mdp_prune.errors import UserError
from mdp_prune.store import io, paths

# -- the table covers every field ------------------------------------------------------------------------------

FIELDS = [(dotted, f.name, default) for dotted, f, default in config_fields()]


def test_every_field_has_a_rule_and_its_default_obeys_it():
    assert set(RULES) == {dotted for dotted, _, _ in FIELDS}
    for dotted, _, default in FIELDS:
        assert RULES[dotted].problem(dotted, default) is None, dotted


# -- hashes of valid configurations are unchanged (computed before validation was tightened; the Q-planner's
#    rows since qlearning's defaults became commit climb, alpha 1,
#    initial_q 0 and state_history 2; budget mode's rows name budget_reward, whose default changed) ----------

TINY = {"train.model": "mlp", "train.hidden_sizes": (32, 16), "train.train_iterations": 40, "train.eval_every": 10,
        "train.batch_size": 32, "rounds": 3, "device": "cpu"}
HASHES = [  # (name, settings, RunConfig.hash(), train_hash)
    ("default", {}, "44136fa355b3", "44136fa355b3"),
    ("global", {"prune.planner": "global"}, "89e1398d49b8", "44136fa355b3"),
    ("random", {"prune.planner": "random"}, "11410179bed2", "44136fa355b3"),
    ("lamp", {"prune.planner": "lamp"}, "2dbfb703e0d9", "44136fa355b3"),
    ("erk", {"prune.planner": "erk"}, "f4c4decdde10", "44136fa355b3"),
    ("qlearning", {"prune.planner": "qlearning"}, "030a98f8963c", "44136fa355b3"),
    ("lenet", PRESETS["lenet"], "6ddb3c8edd72", "76176921f40d"),
    ("lenet+q", {**PRESETS["lenet"], "prune.planner": "qlearning"}, "093ab8d950d4", "76176921f40d"),
    ("conv2", PRESETS["conv2"], "542565581228", "4c0e1fd9c5f5"),
    ("conv2+q", {**PRESETS["conv2"], "prune.planner": "qlearning"}, "851516b17124", "4c0e1fd9c5f5"),
    ("conv4", PRESETS["conv4"], "42c4a3cb4af0", "40b14f8813b9"),
    ("conv4+q", {**PRESETS["conv4"], "prune.planner": "qlearning"}, "a2fe710ea3f5", "40b14f8813b9"),
    ("conv6", PRESETS["conv6"], "ce17d29e73ef", "47686c0dbf0f"),
    ("conv6+q", {**PRESETS["conv6"], "prune.planner": "qlearning"}, "9ba9e98c01e8", "47686c0dbf0f"),
    ("tiny", TINY, "21e69b20761b", "36272bb83027"),
    ("tiny+q", {**TINY, "prune.planner": "qlearning", "qlearning.alpha": 0.7, "qlearning.budget": "lt",
                "qlearning.budget_reward": "plan", "qlearning.anchor_z": 0.0}, "fa70c9a62a76", "36272bb83027"),
    ("ints for floats", {"train.lr": 1, "prune.actions": [0, 0.5], "prune.planner": "qlearning", "qlearning.beta": 2,
                         "qlearning.accuracy_edges": [0.01, 0.1], "train.hidden_sizes": [16]},
     "6e00c26cd0e7", "5f11666dbdf8"),
    ("many", {"prune.planner": "qlearning", "train.optimizer": "sgd", "train.momentum": 0.5, "train.seed": 7,
              "qlearning.alpha_schedule": "exponential", "qlearning.decay": 0.9, "qlearning.feedback": False,
              "qlearning.initial_q": 0.0, "qlearning.proxy": "pruned", "qlearning.target_accuracy": 0.99,
              "prune.target_remaining": 0.04, "train.rewind_iteration": 10},
     "519a1c26d5a3", "f88feb6bee07"),
]


@pytest.mark.parametrize("name,settings,run_hash,dense_hash", HASHES, ids=[h[0] for h in HASHES])
def test_valid_configurations_validate_and_keep_their_hashes(name, settings, run_hash, dense_hash):
    config = RunConfig().replace(**settings).validate()
    assert (config.hash(), train_hash(config.train)) == (run_hash, dense_hash)
    assert RunConfig.from_dict(json.loads(json.dumps(config.to_dict()))).validate() == config


def test_a_changed_default_keeps_the_folders_of_runs_made_under_the_old_one(tmp_path):
    """qlearning's defaults changed (commit best -> climb; alpha 0.5 -> 1, initial_q -1 -> 0, state_history, a new
    field, 0 -> 2): a run folder of the former defaults (explicit, or a config.json written before the fields
    existed) keeps its name, and runs of the new defaults get folders of their own."""
    settings = {**PRESETS["lenet"], "prune.planner": "qlearning"}
    former = {"qlearning.commit": "best", "qlearning.alpha": 0.5, "qlearning.initial_q": -1.0,
              "qlearning.state_history": 0}
    best = RunConfig().replace(**settings, **former)
    assert best.hash() == "1159187dd30d"  # the lenet+q folder of the time when best was the default
    climb = RunConfig().replace(**settings, **{**former, "qlearning.commit": "climb"})
    assert climb.hash() == "e72c0df23aa8"  # ... and of the time when climb was, before alpha and the rest changed
    assert RunConfig().replace(**settings).hash() not in (best.hash(), climb.hash(), "")
    old = best.to_dict()
    del old["qlearning"]["commit"], old["qlearning"]["state_history"]
    (tmp_path / "config.json").write_text(json.dumps(old))
    stored = io.read_config(tmp_path)
    assert (stored.qlearning.commit, stored.qlearning.state_history) == ("best", 0)
    assert stored.hash() == best.hash()
    user = RunConfig.from_dict(old).qlearning  # a user's settings: today's defaults
    assert (user.commit, user.state_history) == ("climb", 2)


def test_the_committed_budget_reward_default_keeps_both_rewards_folders_and_free_modes(tmp_path):
    """budget_reward became `committed` (from `plan`): a budget run of the former default keeps its folder, an
    explicit committed run made before the change is today's default run, and free mode, which never reads the
    field, keeps the folders it had."""
    settings = {**PRESETS["lenet"], "prune.planner": "qlearning"}
    budget = {**settings, "qlearning.budget": "lt", "qlearning.anchor_z": 0.0}  # the anchor did not exist yet
    plan = RunConfig().replace(**budget, **{"qlearning.budget_reward": "plan"})
    assert plan.hash() == "69877e5eeece"  # the lenet budget folder of the time when plan was the default
    assert RunConfig().replace(**budget).hash() == "265508ddee09"  # ... and its explicit --budget-reward committed
    assert RunConfig().replace(**settings).hash() == "093ab8d950d4"  # free mode, before and after
    assert RunConfig().replace(**settings, **{"qlearning.budget_reward": "plan"}).hash() == "093ab8d950d4"
    old = plan.to_dict()
    del old["qlearning"]["budget_reward"]
    (tmp_path / "config.json").write_text(json.dumps(old))
    stored = io.read_config(tmp_path)
    assert stored.qlearning.budget_reward == "plan" and stored.hash() == plan.hash()
    assert RunConfig.from_dict(old).qlearning.budget_reward == "committed"  # a user's settings: today's default


def test_the_anchor_default_keeps_the_folders_of_unanchored_and_anchored_budget_runs(tmp_path):
    """anchor_z became 2 (from 0, off): a budget run made before, whose config.json lacks the field or says 0,
    keeps its folder and its meaning; a run made with an explicit --anchor-z 2 is today's default run; free mode,
    which never reads the field, keeps its folders."""
    settings = {**PRESETS["lenet"], "prune.planner": "qlearning"}
    budget = {**settings, "qlearning.budget": "lt"}
    assert RunConfig().replace(**budget).hash() == "4b267e2a4b3c"  # the folder of an explicit --anchor-z 2 run
    off = RunConfig().replace(**budget, **{"qlearning.anchor_z": 0.0})
    assert off.hash() == "265508ddee09"  # the budget folder of the time when the anchor was off
    assert RunConfig().replace(**settings, **{"qlearning.anchor_z": 0.0}).hash() == "093ab8d950d4"  # free mode
    old = off.to_dict()
    del old["qlearning"]["anchor_z"]
    (tmp_path / "config.json").write_text(json.dumps(old))
    stored = io.read_config(tmp_path)
    assert stored.qlearning.anchor_z == 0.0 and stored.hash() == off.hash()
    assert RunConfig.from_dict(old).qlearning.anchor_z == 2.0  # a user's settings: today's default


def _written(name: str) -> dict:
    """A built-in grid's file as written, with an `extends` spelled out by the documented rule."""
    raw = yaml.safe_load((GRIDS_DIR / f"{name}.yaml").read_text())
    if "extends" not in raw:
        return raw
    parent = _written(raw.pop("extends"))
    base = {**parent["base"], **raw.get("base", {})}
    params = {**parent.get("params", {}), **raw.get("params", {})}
    params = {k: v for k, v in params.items() if k in raw.get("params", {}) or k not in base}
    return {**parent, **raw, "base": base, "params": params}


@pytest.mark.parametrize("name", builtin_grids())
def test_builtin_grids_keep_their_run_folders(name):
    """The loader's checks and conversions do not move a cell: its hash is that of the file's values as written."""
    raw = _written(name)
    cells = load_grid(name).cells()
    assert len(cells) == len(ParameterGrid(raw["params"])) * len(raw["seeds"])
    for cell in cells:
        expected = RunConfig().replace(**raw["base"], **cell.params, **{"train.seed": cell.seed})
        assert cell.config.hash() == expected.hash() and cell.config == expected


# -- every field rejects a value of the wrong type or out of its range -----------------------------------------

def _bad_values(dotted: str, default) -> list:
    rule = RULES[dotted]
    if rule.items:
        return [5, [], ["x"], [True]] + ([[math.nan], [math.inf]] if rule.kind is float else [[1.5]])
    if rule.choices or rule.kind is str:
        return [5, None]
    if rule.kind is bool:
        return ["yes", 1, None]
    if rule.kind is int:
        return [True, 1.5, "3", None, -1, 2**70]
    return [math.nan, math.inf, -math.inf, "0.5", True, None]


BAD_VALUES = [(dotted, name, value) for dotted, name, default in FIELDS for value in _bad_values(dotted, default)]


@pytest.mark.parametrize("dotted,name,value", BAD_VALUES, ids=[f"{d}={v!r}" for d, _, v in BAD_VALUES])
def test_every_field_rejects_bad_values_naming_its_flag(dotted, name, value):
    with pytest.raises(UserError) as error:
        RunConfig().replace(**{dotted: value}).validate()
    message = str(error.value)
    assert message.startswith("--" + name.replace("_", "-") + " must be ") and "\n" not in message


# -- the command line -------------------------------------------------------------------------------------------

def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


CLI_CASES = [
    (["--momentum", "-1", "--optimizer", "sgd"], "--momentum must be in [0, 1)"),
    (["--decay", "0"], "--decay must be in (0, 1]"),
    (["--beta", "inf"], "--beta must be a finite number (positive), got inf"),
    (["--beta", "0"], "--beta must be positive"),
    (["--initial-q", "nan"], "--initial-q must be a finite number, got nan"),
    (["--seed", str(2**70)], f"--seed must be in [0, {2**63 - 1}]"),
    (["--seed", "-1"], "--seed must be in [0, "),
    (["--lr", "inf"], "--lr must be a finite number"),
    (["--lr", "0"], "--lr must be positive"),
    (["--target-accuracy", "nan"], "--target-accuracy must be a finite number (in (0, 2])"),
    (["--target-sparsity", "0"], "--target-sparsity must be in (0, 1)"),
    (["--hidden-sizes", ""], "--hidden-sizes must be a non-empty list of whole numbers"),
    (["--hidden-sizes", "16,0"], "--hidden-sizes must be at least 1 for every item"),
    (["--actions", "0.1,0.1"], "--actions must be strictly increasing"),
    (["--sparsity-edges", "0.1,2"], "--sparsity-edges must be in [0, 1] for every item"),
    (["--accuracy-edges", "0.1,nan"], "--accuracy-edges must be a non-empty list of finite numbers"),
    (["--rounds", str(2**64)], "--rounds must be at most"),
    (["--device", "gpu"], "--device must be one of auto, cpu, cuda, got 'gpu'"),
    (["--alpha-schedule", "cosine"], "--alpha-schedule must be one of constant, linear, exponential"),
    (["--proxy-share", "0"], "--proxy-share must be in (0, 1]"),
    (["--explore-fraction", "1.5"], "--explore-fraction must be in [0, 1]"),
    (["--hidden-sizes", "1.5"], "expected comma-separated ints, got '1.5'"),  # argparse's own check
    # every float field refuses nan and inf, every integer field a value beyond 64 bits and a negative one
    *[([_flag(name), text], _flag(name)) for _, name, default in FIELDS
      if isinstance(default, float) or (isinstance(default, tuple) and isinstance(default[0], float))
      for text in ("nan", "inf", "-inf")],
    *[([_flag(name), text], _flag(name)) for _, name, default in FIELDS
      if type(default) is int or (isinstance(default, tuple) and type(default[0]) is int)
      for text in (str(2**70), "-1")],
]


@pytest.mark.parametrize("argv,needle", CLI_CASES, ids=[" ".join(a)[:40] for a, _ in CLI_CASES])
def test_bad_flags_are_one_line_and_exit_2(capsys, tmp_path, argv, needle):
    try:
        code = main(["run", *argv, "--quiet", "--out", str(tmp_path)])
    except SystemExit as exc:  # argparse's own checks exit directly
        code = exc.code
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert needle in err and len(err.splitlines()) == 1 and err.startswith("error: ")
    assert not any(tmp_path.iterdir())  # nothing was written for a rejected configuration


# -- grid files -------------------------------------------------------------------------------------------------

GRID_CASES = [  # (file content, what the one-line error says)
    ("params:\n  train.lr: [1e-3, abc]\n", "train.lr must be a finite number (positive), got 'abc'"),
    ("params:\n  foo.bar.baz: [1]\n", "unknown configuration field 'foo.bar.baz'"),
    ("base:\n  trian.lr: 0.1\n", "unknown configuration field 'trian.lr' (did you mean 'train.lr'?)"),
    ("base:\n  train:\n    lr: 0.1\n", "'train' (a section: give its fields by dotted name"),
    ("base:\n  1: 2\n", "unknown configuration field 1"),
    ("base:\n  rounds: null\n", "base: rounds must be a whole number (non-negative), got None"),
    ("base:\n  rounds: -1\n", "base: rounds must be non-negative, got -1"),
    ("base:\n  train.hidden_sizes: 5\n", "train.hidden_sizes must be a non-empty list of whole numbers, got 5"),
    ("params:\n  train.hidden_sizes: [16, 32]\n", "each value is a list: [[300, 100], [100]]"),
    ("base:\n  prune.actions: 0.5\n", "prune.actions must be a non-empty list of finite numbers, got 0.5"),
    ("base:\n  prune.actions: [0.0, 0.5, 1.0]\n", "prune.actions must be a fraction in [0, 1) for every item"),
    ("5\n", "must be a mapping with extends, base, params, seeds and search_rounds, got a number"),
    ("- 1\n- 2\n", "must be a mapping with extends, base, params, seeds and search_rounds, got a list"),
    ("base: [1, 2]\n", "base must be a mapping of dotted config names"),
    ("params: 3\n", "params must be a mapping of dotted config names"),
    ("extra: 1\n", "must have only base, params, seeds, search_rounds and extends"),
    (b"\xff\xfe\x00\x01 binary", "it is not UTF-8 text"),
    ("base: {train.lr: [0.1\n", "cannot parse grid"),
    ("params:\n  qlearning.alpha: [0.1\n  - x", "cannot parse grid"),
    ("seeds: [true]\n", "seeds must be a non-empty list of integers, got [True]"),
    ("seeds: []\n", "seeds must be a non-empty list of integers"),
    ("seeds: 3\n", "seeds must be a non-empty list of integers"),
    ("seeds: [1.5]\n", "seeds must be a non-empty list of integers"),
    ("seeds: [-1]\n", "seeds: train.seed must be in [0, "),
    (f"seeds: [{2**70}]\n", "seeds: train.seed must be in [0, "),
    ("seeds: [0, 0]\n", "seeds repeat a seed"),
    ("extends: grid.yaml\n", "extends makes a cycle"),
    ("extends: nowhere.yaml\n", "extends no grid 'nowhere.yaml'"),
    ("extends: 3\n", "extends must name a built-in grid or a grid file, got 3"),
    ("extends: small\nparams:\n  qlearning.alpha: []\n", "params: qlearning.alpha has no values"),
    ("base:\n  train.seed: 3\n", "base sets train.seed; give the seeds as `seeds: [0, 1, 2]`"),
    ("base:\n  train.batch_size: 1.5\n", "train.batch_size must be a whole number (at least 1), got 1.5"),
    ("base:\n  train.batch_size: true\n", "train.batch_size must be a whole number"),
    ("base:\n  train.dataset: 5\n", "train.dataset must be a string, got 5"),
    ("base:\n  train.dataset: imagenet\n", "unknown dataset 'imagenet'"),
    ("base:\n  qlearning.feedback: maybe\n", "qlearning.feedback must be true or false, got 'maybe'"),
    ("base:\n  qlearning.beta: .inf\n", "qlearning.beta must be a finite number (positive), got inf"),
    ("base:\n  qlearning.initial_q: .nan\n", "qlearning.initial_q must be a finite number, got nan"),
    ("params:\n  qlearning.decay: [0.5, 0]\n", "params: qlearning.decay must be in (0, 1], got 0"),
    ("params:\n  qlearning.alpha: []\n", "params: qlearning.alpha has no values"),
    ("params:\n  qlearning.alpha: [0.1, 1.0e-1]\n", "params: qlearning.alpha repeats the value 0.1"),
    ("base:\n  device: gpu\n", "device must be one of auto, cpu, cuda, got 'gpu'"),
    (f"base:\n  qlearning.initial_q: {10**400}\n", "qlearning.initial_q must be a finite number, got 1000"),
    (f"base:\n  rounds: {'9' * 5000}\n", "cannot parse grid"),  # more digits than Python reads
    ("search_rounds: true\n", "search_rounds must be a positive integer, got True"),
    ("search_rounds: 0\n", "search_rounds must be a positive integer, got 0"),
    # values fine on their own, wrong together: the cell is named
    ("base:\n  train.train_iterations: 30\n  train.rewind_iteration: 30\n",
     "cell (seed 0): --rewind-iteration must be in [0, train_iterations=30)"),
    # two cells would share one run folder (the lt planner does not read the qlearning section)
    ("base:\n  prune.planner: lt\nparams:\n  qlearning.alpha: [0.1, 0.5]\n",
     "cells (qlearning.alpha=0.1, seed 0) and (qlearning.alpha=0.5, seed 0) are the same run"),
]


@pytest.mark.parametrize("content,needle", GRID_CASES, ids=[repr(c)[:40] for c, _ in GRID_CASES])
def test_bad_grid_files_are_one_line_naming_the_file(capsys, tmp_path, content, needle):
    path = tmp_path / "grid.yaml"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(UserError) as error:
        load_grid(str(path))
    message = str(error.value)
    assert needle in message and str(path) in message and "\n" not in message
    # the same through `mdp-grid`: exit code 2, one line, before anything is written
    out = tmp_path / "out"
    assert grid_main(["search", "--grid", str(path), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {message}" and not out.exists()


def test_grid_values_are_converted_where_nothing_is_lost(tmp_path):
    """YAML 1.1 reads 1e-3 as a string and 5e4 too: a number field takes them, and an integral float for an
    integer field; the cells are the runs the plainly written grid makes."""
    loose = tmp_path / "loose.yaml"
    loose.write_text("base:\n  prune.planner: qlearning\n  train.lr: 1e-3\n  train.train_iterations: 5e4\n"
                     "  train.batch_size: 64.0\n  prune.actions: [0, 0.5]\n  qlearning.beta: 2\n"
                     "params:\n  qlearning.alpha: [1e-1, '0.5']\n  train.hidden_sizes: [[300.0, 100], [16]]\n")
    plain = tmp_path / "plain.yaml"
    plain.write_text(yaml.safe_dump({
        "base": {"prune.planner": "qlearning", "train.lr": 0.001, "train.train_iterations": 50000,
                 "train.batch_size": 64, "prune.actions": [0.0, 0.5], "qlearning.beta": 2.0},
        "params": {"qlearning.alpha": [0.1, 0.5], "train.hidden_sizes": [[300, 100], [16]]}}))
    assert isinstance(yaml.safe_load(loose.read_text())["base"]["train.lr"], str)  # the YAML 1.1 trap itself
    a, b = load_grid(str(loose)), load_grid(str(plain))
    assert a.params == b.params and a.base == b.base
    assert [c.config for c in a.cells()] == [c.config for c in b.cells()]
    assert [c.config.hash() for c in a.cells()] == [c.config.hash() for c in b.cells()]
    train = a.cells()[0].config.train
    assert train.lr == 0.001 and train.train_iterations == 50_000 and train.batch_size == 64
    assert train.hidden_sizes == (300, 100) and all(type(v) is int for v in (train.batch_size, *train.hidden_sizes))


def test_command_line_overrides_of_a_grid_are_checked_before_any_work(capsys, tmp_path):
    out = tmp_path / "out"
    assert grid_main(["search", "--grid", "small", "--rounds", "-1", "--out", str(out)]) == 2
    assert "--rounds must be non-negative" in capsys.readouterr().err and not out.exists()
    assert grid_main(["search", "--grid", "small", "--seeds", "0,0", "--out", str(out)]) == 2
    assert "are the same run" in capsys.readouterr().err and not out.exists()


# -- a run folder's config.json ---------------------------------------------------------------------------------

CONFIG_JSON_CASES = [
    ('{"train": 5}', "train must be a mapping of field names to values, got 5"),
    ("[1, 2]", "the configuration must be a mapping of field names to values, got [1, 2]"),
    ('"lt"', "the configuration must be a mapping"),
    ('{"bogus": 1}', "unknown configuration field 'bogus'"),
    ('{"train": {"bogus": 1}}', "unknown configuration field 'train.bogus'"),
    ('{"train": {"lr": "fast"}}', "--lr must be a finite number (positive), got 'fast'"),
    ('{"train": {"lr": NaN}}', "--lr must be a finite number (positive), got nan"),
    ('{"train": {"hidden_sizes": 5}}', "--hidden-sizes must be a non-empty list of whole numbers, got 5"),
    ('{"train": {"hidden_sizes": [300.5]}}', "--hidden-sizes must be a non-empty list of whole numbers"),
    ('{"train": {"seed": true}}', "--seed must be a whole number"),
    ('{"rounds": null}', "--rounds must be a whole number (non-negative), got None"),
    ('{"qlearning": {"decay": 0}}', "--decay must be in (0, 1], got 0.0"),
    ('{"prune": {"actions": ["0.1"]}}', "--actions must be a non-empty list of finite numbers"),
    ('{"qlearning": {"initial_q": ' + str(10**400) + "}}", "--initial-q must be a finite number, got 1000"),
    ('{"rounds": ' + "9" * 5000 + "}", "it is not valid JSON"),  # more digits than Python reads
    ("[" * 100_000 + "]" * 100_000, "it is not valid JSON"),  # nesting deeper than the parser goes
    ('{"train": {"lr": 0.1', "it is not valid JSON"),
    ("", "it is not valid JSON"),
    (b"\x80\x81\xfe", "it is not UTF-8 text"),
    ('{"train": ' + json.dumps({"hidden_sizes": list(range(1000)) + [-1]}) + "}", "..."),  # shortened, one line
]


@pytest.mark.parametrize("content,needle", CONFIG_JSON_CASES, ids=[repr(c)[:40] for c, _ in CONFIG_JSON_CASES])
def test_a_damaged_config_json_is_one_line_naming_the_file(capsys, tmp_path, content, needle):
    run = tmp_path / "lt_0123456789ab"
    run.mkdir()
    path = run / paths.CONFIG
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(UserError) as error:
        io.read_config(run)
    message = str(error.value)
    assert needle in message and "\n" not in message and len(message) < 400
    assert message.startswith(f"{path} is damaged (")
    assert message.endswith("`mdp-prune run` writes it: restore it, or rerun the command with a fresh --out")
    assert guarded(lambda: io.read_config(run)) == 2
    assert capsys.readouterr().err.strip() == f"error: {message}"


def test_a_config_json_written_by_run_reads_back(tmp_path):
    config = RunConfig().replace(**{**TINY, "prune.planner": "qlearning", "qlearning.decay": 0.5}).validate()
    io.write_json(tmp_path / paths.CONFIG, config.to_dict())
    assert io.read_config(tmp_path) == config
    assert io.read_config(tmp_path).hash() == config.hash()
