# OpsPortal. The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
VENDOR := static/vendor

.PHONY: run test lint format check pytest assets messages cluster cluster-binaries eureka-server kafka-server wheelhouse fresh-check bench clean

$(VENV)/.stamp: requirements.txt requirements-dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	@touch $@

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --ignore-scripts --no-audit --no-fund

$(VENDOR)/.stamp: node_modules/.package-lock.json
	rm -rf $(VENDOR) && mkdir -p $(VENDOR)/bootstrap $(VENDOR)/htmx $(VENDOR)/xterm $(VENDOR)/swagger-ui $(VENDOR)/uplot
	cp -r node_modules/bootstrap/dist/css node_modules/bootstrap/dist/js $(VENDOR)/bootstrap/
	cp node_modules/htmx.org/dist/htmx.min.js $(VENDOR)/htmx/
	cp node_modules/@xterm/xterm/lib/xterm.js node_modules/@xterm/xterm/css/xterm.css $(VENDOR)/xterm/
	cp node_modules/@xterm/addon-fit/lib/addon-fit.js $(VENDOR)/xterm/
	cp node_modules/swagger-ui-dist/swagger-ui.css node_modules/swagger-ui-dist/swagger-ui-bundle.js \
	   node_modules/swagger-ui-dist/swagger-ui-standalone-preset.js node_modules/swagger-ui-dist/favicon-32x32.png \
	   $(VENDOR)/swagger-ui/
	cp node_modules/uplot/dist/uPlot.iife.min.js node_modules/uplot/dist/uPlot.min.css $(VENDOR)/uplot/
	@touch $@

assets: $(VENDOR)/.stamp

messages: $(VENV)/.stamp
	DJANGO_DEBUG=true $(PY) manage.py compilemessages --ignore=.venv --ignore=node_modules -v 0

## Serve the portal with its sandbox on http://127.0.0.1:8000 (embedded SQLite unless DATABASE_URL/REDIS_URL).
run: $(VENV)/.stamp assets messages eureka-server kafka-server wheelhouse
	$(PY) -m sandbox.run

## Lint, Django checks and the whole test suite against real PostgreSQL, Redis, Celery, Daphne and Chromium.
## The control-plane binaries, the Eureka server, Kafka and the wheelhouse are prerequisites: pytest never builds them.
test: $(VENV)/.stamp assets messages lint cluster-binaries eureka-server kafka-server wheelhouse
	$(PY) -m sandbox.testenv -- $(PY) manage.py check --settings=opsportal.settings_test
	$(PY) -m sandbox.testenv -- $(PY) manage.py makemigrations --check --dry-run --settings=opsportal.settings_test
	$(PY) -m sandbox.testenv -- $(PY) -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.stamp
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(VENV)/.stamp
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

## Build the pinned control-plane binaries into ~/.cache/opsportal/bin (cold: about 10 minutes on 2 cores,
## with go's progress); a no-op when they are current.
cluster-binaries: $(VENV)/.stamp
	$(PY) -m sandbox.kube build

## Build the sandbox's real Eureka server (sandbox/eureka/server, Spring Cloud Netflix from Maven Central) into
## ~/.cache/opsportal/eureka/<hash of its sources> (cold: about 1½ minutes, with Maven's progress); a no-op when current.
eureka-server: $(VENV)/.stamp
	$(PY) -m sandbox.eureka build

## Fetch the wheels of the Python services the sandbox builds (the log proxy's requirements) into
## ~/.cache/opsportal/wheels/<hash of the file>: its builds then read no index. A no-op when current.
wheelhouse: $(VENV)/.stamp
	$(PY) -m sandbox.wheelhouse build

## Resolve the sandbox's real Kafka broker (sandbox/kafka/libs-pom: kafka_2.13 4.4.0 from Maven Central, 45 jars)
## into ~/.cache/opsportal/kafka/<hash of the pom>/libs (cold: about 10 s, with Maven's progress); a no-op when current.
kafka-server: $(VENV)/.stamp
	$(PY) -m sandbox.kafka build

## Start the local Kubernetes control plane in the foreground.
cluster: cluster-binaries
	$(PY) -m sandbox.kube up

## Run .ci/run as a machine that has never built anything would: a fresh clone of HEAD, empty HOME and caches.
fresh-check:
	bash .ci/fresh-check

bench: $(VENV)/.stamp
	$(PY) -m sandbox.testenv -- $(PY) -m bench

clean:
	rm -rf $(VENV) node_modules $(VENDOR) var
