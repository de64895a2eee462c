"""Every lint rule fires on a deliberately broken copy of a clean repository (and only then)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from trtbuild.contracts.trtllm import required_parameters
from trtbuild.repository.lint import lint_repository
from trtbuild.repository.render import render_repository

from .helpers import ROOT, plan_for

ENS, TRT = "models/ensemble/config.pbtxt", "models/tensorrt_llm/config.pbtxt"
BLS, PRE = "models/tensorrt_llm_bls/config.pbtxt", "models/preprocessing/config.pbtxt"
POST = "models/postprocessing/config.pbtxt"


@pytest.fixture(scope="module")
def clean_repos(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> dict[str, Path]:
    """A tp4 engine repository (with an engine config.json) and a CPU reference repository."""
    root = tmp_path_factory.mktemp("lint")
    engine = root / "engine"
    engine.mkdir()
    (engine / "config.json").write_text(json.dumps({
        "version": "1.2.0", "pretrained_config": {"mapping": {"tp_size": 4, "pp_size": 1}},
        "build_config": {"max_batch_size": 256, "max_input_len": 16384, "max_seq_len": 32768,
                         "max_beam_width": 1, "plugin_config": {"use_paged_context_fmha": True}}}))
    gpu = root / "gpu"
    render_repository(plan_for(ROOT / "recipes/llama-3.1-70b-fp8-tp4.yaml", "h100"), out_dir=gpu,
                      tokenizer_dir=tiny_model, engine_dir=engine)
    cpu = root / "cpu"
    render_repository(plan_for(ROOT / "recipes/qwen2.5-7b.yaml", "cpu"), out_dir=cpu, tokenizer_dir=tiny_model,
                      hf_model_dir=tiny_model)
    return {"gpu": gpu, "cpu": cpu, "engine": engine}


def _edit(repo: Path, rel: str, old: str, new: str, count: int = 1) -> None:
    path = repo / rel
    text = path.read_text()
    assert old in text, f"{old!r} not in {rel}"
    path.write_text(text.replace(old, new, count))


def _broken(clean_repos: dict[str, Path], tmp_path: Path, kind: str, edit: Callable[[Path], None]) -> list:
    repo = tmp_path / kind
    shutil.copytree(clean_repos[kind], repo, symlinks=True)
    edit(repo)
    return lint_repository(repo)


def test_clean_repositories_have_no_findings(clean_repos: dict[str, Path]) -> None:
    assert lint_repository(clean_repos["gpu"]) == []
    assert lint_repository(clean_repos["cpu"]) == []


def _engine_here(repo: Path, build: dict) -> None:
    """Give the repository its own engine config.json and point gpt_model_path at it."""
    import re

    (repo / "engine").mkdir()
    (repo / "engine/config.json").write_text(json.dumps({
        "pretrained_config": {"mapping": {"tp_size": 4, "pp_size": 1}}, "build_config": build}))
    text = (repo / TRT).read_text()
    (repo / TRT).write_text(re.sub(r'("gpt_model_path" value \{ string_value: ")[^"]*"', rf'\g<1>{repo / "engine"}"', text))


def _add_postprocessing_input(repo: Path, name: str, dtype: str) -> None:
    _edit(repo, POST, '  { name: "SEQUENCE_LENGTH"',
          f'  {{ name: "{name}" data_type: {dtype} dims: [ 1 ] optional: true }},\n  {{ name: "SEQUENCE_LENGTH"')


BREAKS: dict[str, tuple[str, Callable[[Path], None]]] = {
    "config.parse": ("gpu", lambda r: _edit(r, TRT, "max_batch_size: 256", "max_batch_size: ${triton_max_batch_size}")),
    "template.placeholder": ("gpu", lambda r: _edit(r, TRT, '"gpt_model_path" value { string_value: "',
                                                       '"gpt_model_path" value { string_value: "${engine_dir}')),
    "config.name": ("gpu", lambda r: _edit(r, PRE, 'name: "preprocessing"', 'name: "preproc"')),
    "config.bool": ("gpu", lambda r: _edit(r, TRT, '"enable_chunked_context" value { string_value: "true"',
                                           '"enable_chunked_context" value { string_value: "True"')),
    "config.duplicate": ("gpu", lambda r: _edit(r, ENS, '  { name: "text_output"',
                                                '  { name: "batch_index" data_type: TYPE_INT32 dims: [ 1 ] },\n'
                                                '  { name: "text_output"')),
    "model.files": ("gpu", lambda r: (r / "models/preprocessing/1/model.py").unlink()),
    "manifest.digest": ("gpu", lambda r: _edit(r, POST, "# Stateless", "# Edited. Stateless")),
    "trtllm.kv_reuse_explicit": ("gpu", lambda r: _edit(r, TRT, 'parameters { key: "enable_kv_cache_reuse"',
                                                       '# parameters { key: "enable_kv_cache_reuse"')),
    "trtllm.required": ("gpu", lambda r: _edit(r, TRT, '"inflight_fused_batching"', '"inflight_fused"')),
    "trtllm.parameter_value": ("gpu", lambda r: _edit(r, TRT, '"batch_scheduler_policy" value { string_value: "',
                                                     '"batch_scheduler_policy" value { string_value: "static_batch')),
    "trtllm.paged_context": ("gpu", lambda r: _engine_here(r, {"max_batch_size": 256, "plugin_config": {
        "use_paged_context_fmha": False}})),
    "reference.label": ("cpu", lambda r: _edit(r, TRT, 'backend: "python"', 'backend: "tensorrtllm"')),
    "batch.engine_limit": ("gpu", lambda r: _edit(r, TRT, "max_batch_size: 256", "max_batch_size: 1024")),
    "batch.ensemble": ("gpu", lambda r: _edit(r, ENS, "max_batch_size: 256", "max_batch_size: 512")),
    "decoupled.consistent": ("gpu", lambda r: _edit(r, BLS, "decoupled: true", "decoupled: false")),
    "dtype.logits": ("gpu", lambda r: _edit(r, ENS, '"context_logits" data_type: TYPE_FP32',
                                            '"context_logits" data_type: TYPE_FP16')),
    "dtype.prompt_table": ("gpu", lambda r: _edit(r, BLS, '"prompt_embedding_table" data_type: TYPE_BF16',
                                                  '"prompt_embedding_table" data_type: TYPE_FP16')),
    "ensemble.mapping": ("gpu", lambda r: _edit(r, ENS, 'key: "runtime_top_k"', 'key: "top_k_runtime"')),
    "ensemble.required_input": ("gpu", lambda r: _edit(r, ENS, 'input_map { key: "QUERY" value: "text_input" }', "")),
    "ensemble.decoupled_origin": ("gpu", lambda r: (_add_postprocessing_input(r, "STREAM", "TYPE_BOOL"), _edit(
        r, ENS, 'input_map { key: "SEQUENCE_LENGTH" value: "_SEQUENCE_LENGTH" }',
        'input_map { key: "SEQUENCE_LENGTH" value: "_SEQUENCE_LENGTH" }\n      input_map { key: "STREAM" value: "stream" }'))),
    "ensemble.unused_tensor": ("gpu", lambda r: _edit(r, ENS, 'output_map { key: "OUTPUT" value: "text_output" }',
                                                      'output_map { key: "OUTPUT" value: "text_output" }\n'
                                                      '      output_map { key: "OUTPUT" value: "_spare" }')),
    "world.size": ("gpu", lambda r: _edit(r, "launch.sh", " : \\\n  -n 1", " \\\n  #", 1)),
}


@pytest.mark.parametrize("rule", sorted(BREAKS))
def test_each_rule_fires_on_a_broken_repository(clean_repos, tmp_path: Path, rule: str) -> None:
    kind, edit = BREAKS[rule]
    findings = _broken(clean_repos, tmp_path, kind, edit)
    fired = [f for f in findings if f.rule == rule]
    assert fired, f"{rule} did not fire; findings: {[f.format() for f in findings]}"
    assert all(f.file and f.message for f in fired)
    assert all(rule in f.format() and f.file.split(":")[0] in f.format() for f in fired)


def test_lint_reads_the_engine_config_it_points_at(clean_repos, tmp_path: Path) -> None:
    findings = _broken(clean_repos, tmp_path, "gpu", lambda r: _engine_here(r, {"max_batch_size": 8}))
    assert any(f.rule == "batch.engine_limit" and "max_batch_size 8" in f.message for f in findings)


def test_lint_works_on_a_bare_triton_repository(clean_repos, tmp_path: Path) -> None:
    bare = tmp_path / "bare"
    shutil.copytree(clean_repos["gpu"] / "models", bare)
    assert [f.rule for f in lint_repository(bare) if f.severity == "error"] == []
    _edit(bare, "tensorrt_llm_bls/config.pbtxt", "decoupled: true", "decoupled: false")
    assert [f.rule for f in lint_repository(bare)] == ["decoupled.consistent"]


def test_lint_command_exit_codes(clean_repos, tmp_path: Path, cli) -> None:
    ok = cli("lint", str(clean_repos["gpu"]))
    assert ok.returncode == 0, ok.stderr
    broken = tmp_path / "broken"
    shutil.copytree(clean_repos["gpu"], broken)
    _edit(broken, TRT, 'parameters { key: "enable_kv_cache_reuse"', '# parameters { key: "enable_kv_cache_reuse"')
    done = cli("lint", str(broken))
    assert done.returncode == 4
    assert "models/tensorrt_llm/config.pbtxt" in done.stderr and "[trtllm.kv_reuse_explicit]" in done.stderr
    as_json = json.loads(cli("lint", str(broken), "--json").stdout)
    assert not as_json["clean"] and {f["rule"] for f in as_json["findings"]} >= {"trtllm.kv_reuse_explicit"}
    missing = cli("lint", str(tmp_path / "nope"))
    assert missing.returncode == 2


# ------------------------------------------------------------------ against the backend_parameters contract
def _drop_param(repo: Path, key: str) -> None:
    import re

    path = repo / TRT
    text, n = re.subn(rf'^parameters {{ key: "{key}" .*\n', "", path.read_text(), flags=re.MULTILINE)
    assert n == 1, key
    path.write_text(text)


def _set_param(repo: Path, key: str, value: str) -> None:
    import re

    path = repo / TRT
    text, n = re.subn(rf'(parameters {{ key: "{key}" value {{ string_value: )"[^"]*"', rf'\g<1>"{value}"',
                      path.read_text())
    assert n == 1, key
    path.write_text(text)


@pytest.mark.parametrize("key", required_parameters())
@pytest.mark.parametrize("kind", ["gpu", "cpu"])
def test_a_parameter_the_backend_reads_without_a_default_must_be_there(clean_repos, tmp_path, kind, key):
    findings = _broken(clean_repos, tmp_path, kind, lambda r: _drop_param(r, key))
    fired = [f for f in findings if f.rule == "trtllm.required" and key in f.message]
    assert fired and "fails to load" in fired[0].message, [f.format() for f in findings]


@pytest.mark.parametrize(("key", "value"), [
    ("batch_scheduler_policy", "static_batch"), ("decoding_mode", "explicit_draft_tokens"),
    ("decoding_mode", "greedy"), ("max_beam_width", "one"), ("kv_cache_free_gpu_mem_fraction", "most"),
    ("gpu_weights_percent", ""), ("max_attention_window_size", "all"), ("gpt_model_type", ""),
])
def test_values_the_backend_ignores_are_findings(clean_repos, tmp_path, key, value):
    findings = _broken(clean_repos, tmp_path, "gpu", lambda r: _set_param(r, key, value))
    fired = [f for f in findings if f.rule == "trtllm.parameter_value"]
    if key == "gpt_model_type":  # an invalid batching type fails the load instead
        fired = [f for f in findings if f.rule == "trtllm.required"]
    assert len(fired) == 1 and key in fired[0].message and fired[0].severity == "error", \
        [f.format() for f in findings]


@pytest.mark.parametrize(("key", "value"), [("batch_scheduler_policy", "max_utilization"), ("decoding_mode", "redrafter"),
                                            ("decoding_mode", "top_p"), ("max_beam_width", "2"),
                                            ("guided_decoding_backend", "xgrammar")])
def test_values_the_backend_accepts_are_not_findings(clean_repos, tmp_path, key, value):
    findings = _broken(clean_repos, tmp_path, "gpu", lambda r: _set_param(r, key, value))
    assert not [f for f in findings if f.rule in ("trtllm.parameter_value", "trtllm.required")], \
        [f.format() for f in findings]


def test_an_empty_engine_path_fails_the_load(clean_repos, tmp_path):
    findings = _broken(clean_repos, tmp_path, "gpu", lambda r: _set_param(r, "gpt_model_path", ""))
    assert any(f.rule == "trtllm.required" and "gpt_model_path" in f.message for f in findings)
