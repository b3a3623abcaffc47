# Every target creates the virtual environment from requirements.txt on first use.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cksum requirements.txt | cut -d' ' -f1)
OUT    ?= results
DATASET ?= digits
PRESET ?=
SEEDS  ?= 0,1,2
GRID   ?= small
JOBS   ?= 2

.PHONY: venv test test-all lint bench compare-baseline gridsearch notebooks clean

$(STAMP): requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements.txt
	rm -f $(VENV)/.installed-*
	touch $@

venv: $(STAMP)

test: $(STAMP)  ## fast suite (tiny embedded data): what CI runs
	$(PY) -m pytest

test-all: $(STAMP)  ## also the slow end-to-end checks
	$(PY) -m pytest -m "slow or not slow"

lint: $(STAMP)
	$(PY) -m ruff check .

bench: $(STAMP)  ## speed ratios measured in one run -> bench/results.json
	$(PY) -m mdp_prune.bench --out bench

compare-baseline: $(STAMP)  ## lottery-ticket baseline on $(DATASET) (the comparison arrives with gridsearch/)
	$(PY) -m mdp_prune run --dataset $(DATASET) $(if $(PRESET),--preset $(PRESET)) --planner lt --rounds 10 --out $(OUT)

clean:
	rm -rf bench .pytest_cache .ruff_cache
