# The two commands of the README. Each sets up .venv first (scripts/bootstrap.sh
# is idempotent: it reinstalls only when pyproject.toml changed).
.PHONY: demo test venv

venv:
	./scripts/bootstrap.sh

demo: venv
	.venv/bin/hands run demo

test: venv
	.venv/bin/python -m pytest -q --durations=15
