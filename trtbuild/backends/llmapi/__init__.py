"""The TensorRT-LLM LLM-API (PyTorch backend) serving backend: the recipe as `LLM(...)` arguments, and its
Triton repository.

    llmapi_settings(plan) -> LlmApiSettings                                   settings.py (pure)
    render_llmapi_repository(plan, *, out_dir, hf_model_dir, tokenizer_dir=None) -> RepositoryManifest
    render_llmapi_files(plan, *, hf_model_dir, tokenizer_dir=None) -> RenderedRepository   render.py
    llmapi_lint(view) -> list[Finding]                                       lint.py

The served model is `repo_templates/llmapi/model.py`; it runs where TensorRT-LLM (>= 1.0, written against
the 1.2 line) is installed, e.g. NVIDIA's `tritonserver:<yy.mm>-trtllm-python-py3` container. Every
`LLM(...)` / `SamplingParams(...)` keyword it uses is checked against the contract fixtures
trtbuild/contracts/trtllm_1_2/llmapi_*.json (tests/llmapi).
"""
