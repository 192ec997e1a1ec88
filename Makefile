# adasr — set-up and the two entry points of the README (make demo, make test).
# Everything installs into .venv with pip; torch is pinned to the CPU wheel (torch==2.13.0) and installed first,
# lpips with --no-deps (its torchvision requirement cannot import beside CPU torch and is never needed).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
NBVAL  := --nbval --nbval-current-env --nbval-sanitize-with notebooks/nbval_sanitize.cfg --nbval-cell-timeout=300

.PHONY: install demo test unit notebooks-test notebooks figures lab bench schedules clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q --no-deps lpips==0.1.4
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

## The main job: upscale a bundled image with the shipped weights, write the result and a comparison figure.
demo: $(STAMP)
	mkdir -p out
	$(BIN)/adasr upscale data/astronaut_lr128.png -o out/astronaut_x4.png --report out/astronaut_x4.json \
		--compare figures/demo_astronaut_x4.png

## Re-run the schedule search on the training photos and re-register adasr/weights/schedules.json (~15 min, 2 cores).
schedules: $(STAMP)
	$(BIN)/python -m adasr.adaptive.schedule_opt

## The whole test suite: unit tests, then every notebook under nbval. pytest's exit 5 (nothing collected) fails loudly.
test: $(STAMP) unit notebooks-test

unit: $(STAMP)
	$(BIN)/python -m pytest -q tests; rc=$$?; [ $$rc -eq 5 ] && echo "pytest collected no unit tests"; exit $$rc

notebooks-test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider $(NBVAL) notebooks/; rc=$$?; \
		[ $$rc -eq 5 ] && echo "pytest collected no notebooks"; exit $$rc

## Re-execute the notebooks in place (outputs committed, widget state and noisy metadata stripped).
notebooks: $(STAMP)
	$(BIN)/python tools/run_notebooks.py

## Regenerate every file in figures/: the notebooks and their solutions (re-executed in place), the benchmark figures
## redrawn from the committed results (benchmarks/results/*.json; `make bench` re-measures them), and the demo.
## tests/test_figures.py fails when a file in figures/ is produced by none of these.
figures: $(STAMP)
	$(BIN)/python tools/run_notebooks.py notebooks/[0-9][0-9]_*.ipynb notebooks/solutions/*.ipynb
	$(BIN)/adasr bench adaptive --replot benchmarks/results/adaptive.json --figure figures/bench_adaptive_curve.png
	$(BIN)/adasr bench schedules --replot benchmarks/results/schedules.json --figure figures/bench_schedules.png
	$(BIN)/adasr bench adadiffsr --replot benchmarks/results/adadiffsr.json --figure figures/bench_adadiffsr.png
	$(BIN)/adasr bench reuse --replot benchmarks/results/reuse.json --figure figures/bench_reuse.png
	$(BIN)/adasr bench sparse --replot benchmarks/results/sparse.json --figure figures/bench_sparse.png
	$(MAKE) demo

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/

## Every benchmark, one after another (adasr.benchmarks; about an hour on 2 CPU cores): quality and speed print their
## tables; adaptive, quant, adadiffsr, reuse and sparse also rewrite the committed results (benchmarks/results/*.json,
## figures). bench sparse needs the three training runs named in adasr/benchmarks/sparse.py (about 30 min each).
bench: $(STAMP)
	$(BIN)/adasr bench quality
	$(BIN)/adasr bench speed
	$(BIN)/adasr bench adaptive --json benchmarks/results/adaptive.json --figure figures/bench_adaptive_curve.png
	$(BIN)/adasr bench quant --json benchmarks/results/quant.json
	$(BIN)/adasr bench adadiffsr --json benchmarks/results/adadiffsr.json --figure figures/bench_adadiffsr.png
	$(BIN)/adasr bench reuse --json benchmarks/results/reuse.json --figure figures/bench_reuse.png
	$(BIN)/adasr bench sparse --json benchmarks/results/sparse.json --figure figures/bench_sparse.png

clean:
	rm -rf out .pytest_cache
