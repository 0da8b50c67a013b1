# Every target sets up .venv/ first when it is missing, so a fresh machine needs nothing else.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# Debian packages: libusb for open3d; Xvfb + GL/xcb libraries for the Qt/OpenGL GUI and its tests.
APT_PACKAGES := libusb-1.0-0 xvfb xauth libgl1 libegl1 libgl1-mesa-dri libglx-mesa0 libdbus-1-3 \
	libfontconfig1 libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-image0 \
	libxcb-randr0 libxcb-render-util0 libxcb-shape0 libxcb-xinerama0 libxcb-xkb1 fonts-dejavu-core

.PHONY: setup system-deps venv test run gui bench train labels soak latency fuzz clean

setup: system-deps venv

system-deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -z "$$missing" ]; then echo "system packages: all present"; \
	elif [ "$$(id -u)" = 0 ]; then \
		echo "installing Debian packages: $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	else \
		echo "Missing Debian packages; run as root:"; \
		echo "  sudo apt-get install -y $$missing"; \
	fi

venv: $(STAMP)

$(STAMP): requirements.txt setup.py
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	@touch $(STAMP)

# One torch thread per process: the suite runs the node and GUI in child processes beside
# pytest, and on 2 cores two threads per process stall each other (13 min vs < 1 min).
test: setup
	OMP_NUM_THREADS=1 $(PY) -m pytest -q $(PYTEST_ARGS)

run: setup
	$(VENV)/bin/grasp-equi run

gui: setup
	$(VENV)/bin/grasp-equi-gui

bench: setup
	$(VENV)/bin/grasp-equi bench --propose --json docs/bench.json

# Replaces the shipped weights, so it asks for TRAIN_FLAGS=--force (or --resume to continue runs/default).
TRAIN_FLAGS ?=
train: setup
	$(VENV)/bin/grasp-equi generate --out data/default --workers 2 --resume
	$(VENV)/bin/grasp-equi train --data data/default --out runs/default --steps 100000 --max-minutes 80 \
		--eval-every 100 --patience 12 --batch 16 --threads 1 --val-clouds 150 --lr 3e-3 --warmup 50 \
		--publish grasp_equi/weights $(TRAIN_FLAGS)

# P(held) labels of the default dataset: label-physics first copies in the shipped ones (labels/default,
# used only where they fit data/default's shards), then labels the rest (resumable; stop and rerun at will).
LABEL_FLAGS ?=
labels: setup
	$(VENV)/bin/grasp-equi generate --out data/default --workers 2 --resume
	$(VENV)/bin/grasp-equi label-physics --data data/default --trials 4 --workers 2 \
		--reuse labels/default/physics $(LABEL_FLAGS)

soak: setup
	$(PY) scripts/soak.py

latency: setup
	$(PY) scripts/ros_latency.py

# Bounded DDS fuzz campaign against the real node: >= 10,000 hostile messages of every kind
# (docs/limits.md), valid probes interleaved; prints the counts, exit 1 on any failure.
fuzz: setup
	OMP_NUM_THREADS=1 $(PY) scripts/fuzz_node.py $(FUZZ_ARGS)

clean:
	rm -rf $(VENV) build install log .pytest_cache
