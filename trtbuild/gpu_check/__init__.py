"""The GPU acceptance check (`make gpu-check`, `python -m trtbuild.gpu_check`): build the demo model with the
real TensorRT-LLM, serve it with the real tritonserver, and run the client-contract and `gpu` tests against
it. See run.py for the steps and docs/verification.md ("What only the GPU check verifies")."""
