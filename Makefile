# convlint: `make demo` and `make test` work on a fresh machine with only Python 3.11.
# Both create .venv when it is missing and install a CPU build of torch first (from PyTorch's
# CPU index where it is reachable, else the exact pin from the default index: any other spec pulls
# several GB of CUDA on Linux), then convlint with every framework extra and its dev tools.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.convlint-installed
PYTEST_ARGS ?=
TORCH  ?= 2.13.0
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu

.PHONY: install demo test test-python test-extension test-slow test-explorer test-fast test-compat lint fixtures bench-faults bench-realbugs bench-scripts bench-check bench-server bench-training bench-fuzz bench-quant docs-screenshot clean bench-zoo bench-training-real

install: $(STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	@# the CPU index fails fast where it is unreachable (5 s timeout, no retry); then the pin
	$(BIN)/pip install --quiet --timeout 5 --retries 0 --index-url $(TORCH_CPU_INDEX) 'torch==$(TORCH)' 2>/dev/null \
	  || $(BIN)/pip install --quiet 'torch==$(TORCH)'
	$(BIN)/pip install --quiet -e '.[all,dev,executorch]'
	@touch $(STAMP)

# a faulty pair exits 1 by design (a fault was found): say so instead of make's "Error 1 (ignored)"
EXPECT_1 = rc=$$?; if [ $$rc -eq 1 ]; then echo "(exit 1: expected, the pair is divergent)"; \
	elif [ $$rc -ne 0 ]; then echo "(exit $$rc: could not analyse)"; exit $$rc; fi

demo: install
	@rm -rf .demo && mkdir -p .demo
	@echo "== a clean conversion: Keras -> TFLite (float)"
	$(BIN)/convlint diff fixtures/models/mobilenet.keras fixtures/models/mobilenet.tflite
	@echo
	@echo "== a faulty twin: Keras -> TFLite with Optimize.DEFAULT (weights silently int8): found, localized, repaired"
	@$(BIN)/convlint diff fixtures/models/mobilenet.keras fixtures/models/mobilenet.dynint8.tflite --repair \
	    --repaired-output .demo/mobilenet.repaired.tflite \
	    --html .demo/mobilenet.report.html --model-explorer .demo/mobilenet.overlay.json; $(EXPECT_1)
	@echo
	@echo "== a faulty twin: torch -> ONNX with one tampered weight tensor: found, localized, repaired"
	@$(BIN)/convlint diff fixtures/models/resnet.pt2 fixtures/models/resnet.torch.tampered.onnx --repair \
	    --repaired-output .demo/resnet.repaired.onnx; $(EXPECT_1)
	@echo
	@echo "== the repaired model, checked again"
	$(BIN)/convlint diff fixtures/models/resnet.pt2 .demo/resnet.repaired.onnx

test: test-python test-extension

test-python: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# the VS Code extension (Node 20 + npm): bundled/ (convlint's wheel, its light dependencies' wheels,
# the server's pure-Python libs), type-check, bundle, the .vsix and a check of its contents, then
# unit tests against a mocked vscode, the end-to-end test against the real server in .venv, and
# the .vsix installing convlint from its own contents into a bare virtual environment
EXT := vscode-extension
$(EXT)/node_modules/.package-lock.json: $(EXT)/package-lock.json $(EXT)/package.json
	cd $(EXT) && npm ci --no-audit --no-fund

test-extension: install $(EXT)/node_modules/.package-lock.json
	$(BIN)/python $(EXT)/scripts/bundle_python.py
	cd $(EXT) && npm run build && npm run package
	cd $(EXT) && CONVLINT_PYTHON=$(CURDIR)/$(BIN)/python CONVLINT_VSIX=convlint.vsix npm test

# the smoke path (tests/compat/) on the oldest supported versions (tests/compat/oldest.txt), in an
# environment of its own; `make test` runs the same tests on the newest
COMPAT := .venv-compat
$(COMPAT)/.convlint-installed: pyproject.toml tests/compat/oldest.txt
	test -x $(COMPAT)/bin/python || $(PYTHON) -m venv $(COMPAT)
	$(COMPAT)/bin/pip install --quiet -c tests/compat/oldest.txt -e '.[all,dev]'
	@touch $@

test-compat: $(COMPAT)/.convlint-installed
	$(COMPAT)/bin/python -m pytest -m compat tests/compat $(PYTEST_ARGS)

# --model-explorer's files in the real Model Explorer (tests/test_model_explorer.py and the adapters' ids,
# tests/test_model_explorer_ids.py; about two minutes): Model Explorer, its ONNX adapter and playwright,
# driving the system's chromium
test-explorer: install
	$(BIN)/pip install --quiet -e '.[explorer-test]'
	$(BIN)/python -m pytest -m 'bench or not bench' tests/test_model_explorer.py tests/test_model_explorer_ids.py $(PYTEST_ARGS)

# the slow end-to-end tests kept out of make test (bench-marked, about 8 minutes): the real Model
# Explorer (test-explorer), the language server's heavy checks of a saved notebook, and train-check
# on the Keras GradientTape, Lightning and Hugging Face Trainer loops; .ci/run runs it
test-slow: test-explorer
	$(BIN)/python -m pytest -m bench tests/test_server_notebooks.py tests/test_training_loops.py \
	  $(PYTEST_ARGS)

test-fast: install
	$(BIN)/python -m pytest -m 'not slow' $(PYTEST_ARGS)

# ruff on the tree, pyright (basic, [tool.pyright] in pyproject.toml) on analyzers/; pyright resolves
# convlint.analyzers (installed from analyzers/) through a link tree in .pyright/
lint: install
	$(BIN)/ruff check .
	@mkdir -p .pyright/convlint && ln -sfn ../../analyzers .pyright/convlint/analyzers \
	  && ln -sfn ../../server .pyright/convlint/server && ln -sf ../../convlint/__init__.py .pyright/convlint/__init__.py
	$(BIN)/pyright --pythonpath $(CURDIR)/$(BIN)/python

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

# a generated zoo (bench/zoo/.zoo/, git-ignored) through the process pool and Ray, 1 and 2 workers
bench-zoo: install
	$(BIN)/pip install --quiet -e '.[ray]'
	$(BIN)/python bench/zoo/run.py --workers 1 2
# real buggy training programs (DeepLocalize, DeepFD, PyTorch forum) and their fixed twins:
# each pair checked plainly, then scored through `convlint train-check` (bench/training_real/README.md)
bench-training-real: install
	$(BIN)/python bench/training_real/validate.py -j 2
	$(BIN)/python bench/training_real/run.py -j 2

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
	rm -rf $(VENV) $(COMPAT) .pytest_cache build *.egg-info .demo $(EXT)/node_modules $(EXT)/dist $(EXT)/out $(EXT)/bundled $(EXT)/convlint.vsix

# int8 quantization faults on real models that wheels ship (issue 21 B), against qdq_loss_debug
bench-quant: install
	$(BIN)/python bench/quant/run.py
