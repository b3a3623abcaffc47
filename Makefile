# Every target creates the virtual environment on first use: requirements.txt, then the project itself
# (editable, so that `import mdp_prune` and the `mdp-prune`/`mdp-grid` commands work from any folder).
VENV   ?= .venv
PY     := $(VENV)/bin/python
# The versions the documented figures were measured with; `make venv CONSTRAINTS=` installs the newest instead.
CONSTRAINTS ?= constraints.txt
STAMP  := $(VENV)/.installed-$(shell cat requirements.txt pyproject.toml $(CONSTRAINTS) | cksum | cut -d' ' -f1)
# Variables of gridsearch and compare-baseline (empty: the grid file's own value).
OUT     ?= results/compare
GRID    ?= small
DATASET ?=
PRESET  ?=
SEEDS   ?=
ROUNDS  ?=
JOBS    ?= 2
THREADS ?=
# Presets whose planner round `make bench` times against training (e.g. BENCH_PRESETS=lenet,conv2).
BENCH_PRESETS ?= lenet
GRID_ARGS = --grid $(GRID) --out $(OUT) --n-jobs $(JOBS) $(if $(DATASET),--dataset $(DATASET)) \
	$(if $(PRESET),--preset $(PRESET)) $(if $(SEEDS),--seeds $(SEEDS)) $(if $(ROUNDS),--rounds $(ROUNDS))

.PHONY: venv test test-all lint bench compare-baseline gridsearch notebooks clean

$(STAMP): requirements.txt pyproject.toml $(CONSTRAINTS)
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements.txt $(if $(CONSTRAINTS),-c $(CONSTRAINTS),--upgrade)
	$(VENV)/bin/pip install --quiet -e . --no-deps
	rm -f $(VENV)/.installed-*
	touch $@

venv: $(STAMP)

test: $(STAMP)  ## fast suite (tiny embedded data): what CI runs
	$(PY) -m pytest

test-all: $(STAMP)  ## also the slow end-to-end checks
	$(PY) -m pytest -m "slow or not slow"

lint: $(STAMP)
	$(PY) -m ruff check .  # the packages, the tests and notebooks/run.py

bench: $(STAMP)  ## speed ratios measured in one run -> bench/results.json
	$(PY) -m mdp_prune.experiments.bench --out bench --planner-presets $(BENCH_PRESETS) $(if $(THREADS),--threads $(THREADS))

gridsearch: $(STAMP)  ## Q-learning hyperparameter grid -> $(OUT)/grid.csv
	$(PY) -m gridsearch search $(GRID_ARGS)

compare-baseline: $(STAMP)  ## grid, selection on validation, every baseline -> $(OUT)/report.md
	$(PY) -m gridsearch compare $(GRID_ARGS)

notebooks: $(STAMP)  ## execute the notebooks on $(OUT) -> notebooks/_build/ (HTML, executed copies, PNGs)
	$(PY) notebooks/run.py --results $(OUT) --out notebooks/_build

clean:
	rm -rf bench .pytest_cache .ruff_cache
