# neuralvox: `make demo` runs the main job on the embedded default sim, `make test` runs the tests.
VENV := .venv
STAMP := $(VENV)/.neuralvox-installed
SOURCES := pyproject.toml CMakeLists.txt scripts/setup.sh $(wildcard neuralvox/_vdb/*)

.PHONY: setup demo test lint clean
setup: $(STAMP)

$(STAMP): $(SOURCES)
	bash scripts/setup.sh
	touch $@

demo: setup
	$(VENV)/bin/neuralvox demo

test: setup lint
	$(VENV)/bin/python -m pytest -q

lint: setup
	$(VENV)/bin/ruff check .

clean:
	rm -rf build $(VENV)
