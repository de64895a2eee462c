"""The vLLM serving backend: the recipe's settings as vLLM engine arguments, and its Triton repository.

    vllm_settings(plan) -> VllmSettings                                    settings.py (pure)
    render_vllm_repository(plan, *, out_dir, hf_model_dir, tokenizer_dir=None) -> RepositoryManifest
    render_vllm_files(plan, *, hf_model_dir, tokenizer_dir=None) -> RenderedRepository   render.py

The served model is `repo_templates/vllm/model.py`; it runs in vLLM's own Python environment
(`make vllm-venv` → .venv-vllm), which `TritonServer(..., python_env=...)` puts in front of tritonserver.
"""
