# Inside CNNs — two commands: `make book` and `make test`. Everything else is a helper.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
MATHJAX := _mathjax/mathjax/tex-chtml.js
export PATH := $(abspath $(VENV))/bin:$(PATH)
export PYTHONHASHSEED := 0
# No MPLBACKEND here: with it set, ipykernel never enables the inline backend and the book has no figures.
# the self-check cell at the end of every exercise returns at once under make test / nbval / grading
export COURSE_SELF_CHECK := 0

CHAPTER_NBS := $(wildcard chapters/*.ipynb)
SOLUTION_NBS := $(wildcard solutions/*/*.ipynb)

.PHONY: help venv book test test-lib gpu-check sync exercises bench lint clean mathjax

help:
	@echo "make book       build the Jupyter Book into _build/html (executes chapters, cached)"
	@echo "make test       library tests, pair/nbgrader checks, and every chapter + solution under nbval"
	@echo "make sync       re-pair chapters/*.md and solutions/*/*.md with their .ipynb (jupytext)"
	@echo "make exercises  regenerate exercises/ from solutions/ with nbgrader"
	@echo "make bench      run the timing scripts in benchmarks/"
	@echo "make gpu-check  on a CUDA machine: the CPU/GPU parity tests, then every chapter on the GPU"
	@echo "                (no venv there? PYTHONPATH=. python benchmarks/gpu_check.py)"

# The virtual environment is (re)built whenever requirements.txt or pyproject.toml change.
$(STAMP): requirements.txt requirements-nodeps.txt pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -r requirements-nodeps.txt
	touch $(STAMP)

venv: $(STAMP)

# MathJax 3 from the npm registry, served locally (no CDN at read time).
$(MATHJAX):
	mkdir -p _mathjax/npm
	cd _mathjax/npm && npm install --no-audit --no-fund --silent mathjax@3
	rm -rf _mathjax/mathjax && cp -r _mathjax/npm/node_modules/mathjax/es5 _mathjax/mathjax

mathjax: $(MATHJAX)

# The execution cache is keyed on each notebook's text; tools.bookcache empties it when course_lib, a zoo
# checkpoint or a study result changed, so the book never shows outputs of older code.
book: $(STAMP) $(MATHJAX)
	$(PY) -m tools.bookcache _build/.jupyter_cache
	$(VENV)/bin/jupyter-book build . -W --keep-going
	$(PY) -m tools.bookcheck _build/html

# The docstring examples of course_lib run too (--doctest-modules); `+SKIP` marks the few that need a network or a GPU.
test: $(STAMP)
	$(PY) -m pytest -q tests
	$(PY) -m pytest -q -p no:cacheprovider --doctest-modules course_lib
	$(PY) -m pytest -q --nbval-lax -p no:cacheprovider $(CHAPTER_NBS) $(SOLUTION_NBS)

test-lib: $(STAMP)
	$(PY) -m pytest -q tests -m "not slow"
	$(PY) -m pytest -q -p no:cacheprovider --doctest-modules course_lib

# On a machine with CUDA: the parity tests (marked `cuda`) and every chapter executed on the GPU.
gpu-check: $(STAMP)
	$(PY) -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'gpu-check needs a CUDA device')"
	$(PY) -m pytest -q -rA -m cuda tests
	COURSE_DEVICE=cuda $(PY) -m pytest -q --nbval-lax -p no:cacheprovider $(CHAPTER_NBS)

sync: $(STAMP)
	$(VENV)/bin/jupytext --sync chapters/*.md solutions/*/*.md

exercises: $(STAMP)
	$(PY) -m tools.exercises generate

bench: $(STAMP)
	$(PY) -m pip install -q -e ".[bench]"
	for f in benchmarks/*.py; do [ "$$f" = benchmarks/gpu_check.py ] && continue; echo "== $$f"; $(PY) $$f || exit 1; done

lint: $(STAMP)
	$(VENV)/bin/ruff check course_lib tests benchmarks tools

clean:
	rm -rf _build .pytest_cache
