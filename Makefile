# Two entry points for a fresh clone: `make run` (quickstart on the bundled sample) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test bench bench-tools clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, pinned to the release this machine's pip resolves from its local wheel cache
	$(BIN)/pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install -q -e '.[flows,test]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/pipeline predict samples/ecg/JS00013.mat samples/ecg/JS00007.mat samples/ecg/JS00012.mat samples/ecg/JS00008.mat
	$(BIN)/pipeline scalogram samples/ecg/JS00007.mat -o artifacts/quickstart/JS00007-scalogram.png
	$(BIN)/pipeline evaluate ecg samples/ecg --out artifacts/quickstart/ecg-eval
	$(BIN)/pipeline separate samples/audio/music-delta-80s-rock.ogg --out artifacts/quickstart/stems

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

# The project against pywt/fCWT/ssqueezepy/ptwt, XQRS/NeuroKit2 and Open-Unmix/HTDemucs, in a venv of its
# own so that .venv stays as CI builds it (fcwt needs the system FFTW: apt-get install libfftw3-dev)
BENCH_VENV := .venv-bench
$(BENCH_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install -q --upgrade pip
	$(BENCH_VENV)/bin/pip install -q torch==2.14.1
	$(BENCH_VENV)/bin/pip install -q -e '.[bench]'
	touch $@

bench-tools: $(BENCH_VENV)/.installed
	$(BENCH_VENV)/bin/python bench/compare_tools.py

clean:
	rm -rf $(VENV) .pytest_cache
