"""The recipe the GPU check builds plans on every GPU of the catalog (whatever GPU the user has), with an
engine stage, and its LLM-API repository renders and lints clean (the real render and lint steps)."""

from __future__ import annotations

from pathlib import Path

import pytest

from trtbuild.catalog.gpus import all_gpus
from trtbuild.gpu_check.steps import lint, render_llmapi, write_recipe


@pytest.mark.parametrize("streaming", [True, False])
def test_recipe_plans_on_every_gpu(tmp_path: Path, smollm2_model: Path, streaming: bool) -> None:
    from trtbuild.plan.planner import make_plan
    from trtbuild.recipe.loader import load_recipe

    recipe = load_recipe(write_recipe(tmp_path / "recipe", smollm2_model, streaming=streaming))
    gpus = [g for g in all_gpus() if g.sm > 0]
    assert len(gpus) > 10
    for gpu in gpus:
        plan = make_plan(recipe, gpu.key)
        assert plan.feasible, (gpu.key, [d.format() for d in plan.errors])
        assert plan.stage("engine") is not None, gpu.key
    assert recipe.recipe.runtime.streaming is streaming


def test_llmapi_repository_renders_and_lints(tmp_path: Path, smollm2_model: Path) -> None:
    recipe = write_recipe(tmp_path / "recipe", smollm2_model, streaming=False)
    status, detail, data = render_llmapi(recipe, "h100-sxm", tmp_path / "repo", smollm2_model)
    assert status == "passed", detail
    assert (Path(data["repository"]) / "models" / "tensorrt_llm_bls" / "1" / "model.yaml").is_file()
    repo = Path(data["repository"])
    status, detail, _ = lint(repo, tmp_path / "lint.log")
    assert status == "passed", detail
    assert (tmp_path / "lint.log").read_text().startswith("$ ") and f" lint {repo}" in (tmp_path / "lint.log").read_text()
    model_yaml = repo / "models" / "tensorrt_llm_bls" / "1" / "model.yaml"
    model_yaml.write_text(model_yaml.read_text() + "\nmax_batch_sizes: 4\n")
    status, detail, _ = lint(repo, tmp_path / "lint2.log")
    assert status == "failed" and detail.startswith("trtbuild lint exit 4") and "max_batch_sizes" in detail, detail
