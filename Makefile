# convlint: `make demo` and `make test` work on a fresh machine with only Python 3.11.
# Both create .venv when it is missing and install torch (CPU, by exact pin, first: any other
# spec pulls several GB of CUDA), then convlint with its dev extras.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.convlint-installed
PYTEST_ARGS ?=

.PHONY: install demo test test-python test-extension test-fast lint fixtures bench-faults bench-realbugs bench-scripts bench-check bench-server bench-training bench-fuzz docs-screenshot clean

install: $(STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	@# the language server's start-up cache (docs/server.md, Start-up); without it only the first start is slower
	-$(BIN)/convlint serve --prepare
	@touch $(STAMP)

demo: install
	@rm -rf .demo && mkdir -p .demo
	@echo "== a clean conversion: Keras -> TFLite (float)"
	-$(BIN)/convlint diff fixtures/models/mobilenet.keras fixtures/models/mobilenet.tflite
	@echo
	@echo "== a faulty twin: Keras -> TFLite with Optimize.DEFAULT (weights silently int8): found, localized, repaired"
	-$(BIN)/convlint diff fixtures/models/mobilenet.keras fixtures/models/mobilenet.dynint8.tflite --repair --output .demo/mobilenet.repaired.tflite \
	    --html .demo/mobilenet.report.html --model-explorer .demo/mobilenet.overlay.json
	@echo
	@echo "== a faulty twin: torch -> ONNX with one tampered weight tensor: found, localized, repaired"
	-$(BIN)/convlint diff fixtures/models/resnet.pt2 fixtures/models/resnet.torch.tampered.onnx --repair --output .demo/resnet.repaired.onnx
	@echo
	@echo "== the repaired model, checked again"
	-$(BIN)/convlint diff fixtures/models/resnet.pt2 .demo/resnet.repaired.onnx

test: test-python test-extension

test-python: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# the VS Code extension (Node 20 + npm): type-check, bundle, unit tests against a mocked vscode,
# the end-to-end test against the real server in .venv, then the .vsix and a check of its contents
EXT := vscode-extension
$(EXT)/node_modules/.package-lock.json: $(EXT)/package-lock.json $(EXT)/package.json
	cd $(EXT) && npm ci --no-audit --no-fund

test-extension: install $(EXT)/node_modules/.package-lock.json
	cd $(EXT) && CONVLINT_PYTHON=$(CURDIR)/$(BIN)/python npm test
	cd $(EXT) && npm run package

test-fast: install
	$(BIN)/python -m pytest -m 'not slow' $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .

fixtures: install
	$(BIN)/python fixtures/generate.py

# benchmarks are never part of `make test`; each writes its numbers to bench/RESULTS.md
bench-check: install
	$(BIN)/python bench/check/run.py

bench-scripts: install
	$(BIN)/python bench/scripts/run.py

bench-server: install
	$(BIN)/python bench/server/run.py

bench-training: install
	$(BIN)/python bench/training/run.py --jobs 2

bench-fuzz: install
	$(BIN)/python bench/fuzz/run.py --n 10000

# the screenshot in docs/ci.md (needs chromium)
docs-screenshot: install
	$(BIN)/python docs/img/screenshot.py

bench-faults: install
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	$(BIN)/python bench/faults/run.py --mobilenetv2 --polygraphy

# real converter bugs: cases build their models with the real converters (some in an environment
# of their own, made on first use under bench/realbugs/.venv-*)
bench-realbugs: install
	$(BIN)/python bench/realbugs/run.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info .demo $(EXT)/node_modules $(EXT)/dist $(EXT)/out $(EXT)/convlint.vsix
