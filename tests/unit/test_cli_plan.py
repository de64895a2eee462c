"""The CLI as a user runs it: exit codes, --json, no tracebacks, a light planning path."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RECIPES = ROOT / "recipes"


def test_validate_examples_exit_0(cli) -> None:
    r = cli("validate", *sorted(str(p) for p in RECIPES.glob("*.yaml")))
    assert r.returncode == 0, r.stderr
    assert r.stdout.count(": ok (") == len(list(RECIPES.glob("*.yaml")))


def test_validate_invalid_exit_3_compiler_form_no_traceback(cli, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("recipe: 1\nname: x\nmodel: {source: m}\nruntime:\n  max_input_len: 9\n")
    good = RECIPES / "qwen2.5-7b.yaml"
    r = cli("validate", str(good), str(bad))
    assert r.returncode == 3
    assert f"{bad}:5:3: runtime.max_input_len: 'max_input_len' is a build-time (engine) setting" in r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    assert "qwen2.5-7b.yaml: ok" in r.stdout


def test_validate_json(cli, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("recipe: 1\nname: x\nmodel: {source: m}\nbuild: {max_batch_size: 0}\n")
    r = cli("validate", "--json", str(bad))
    assert r.returncode == 3
    out = json.loads(r.stdout)
    assert out["valid"] is False
    err = out["files"][0]["errors"][0]
    assert (err["line"], err["column"], err["path"]) == (4, 25, "build.max_batch_size")


def test_validate_missing_file_is_usage_error(cli, tmp_path: Path) -> None:
    r = cli("validate", str(tmp_path / "none.yaml"))
    assert r.returncode == 2 and "no such recipe file" in r.stderr  # as for plan, compile, ...


def test_plan_human_and_json(cli) -> None:
    r = cli("plan", str(RECIPES / "llama-3.1-8b-fp8.yaml"), "--gpu", "h100")
    assert r.returncode == 0, r.stderr
    assert "H100 SXM" in r.stdout and "8,030,261,248" in r.stdout and "feasible: yes" in r.stdout
    j = json.loads(cli("plan", str(RECIPES / "llama-3.1-8b-fp8.yaml"), "--gpu", "h100", "--json").stdout)["plans"][0]
    assert j["model"]["parameters"] == 8_030_261_248 and j["feasible"] is True
    assert j["memory"]["kv_bytes_per_token"] == 65_536


def test_plan_several_gpus_json(cli) -> None:
    r = cli("plan", str(RECIPES / "mistral-7b-int4-awq.yaml"), "--gpu", "a100", "--gpu", "l4", "--json")
    assert r.returncode == 0, r.stderr
    plans = json.loads(r.stdout)["plans"]
    assert [p["target"]["sm"] for p in plans] == [80, 89]
    assert [p["settings"]["build"]["max_batch_size"] for p in plans] == [64, 16]


def test_infeasible_plan_exit_3_with_numbers(cli, tmp_path: Path) -> None:
    r = tmp_path / "r.yaml"
    r.write_text(f"recipe: 1\nname: big\nmodel:\n  source: {RECIPES / 'models' / 'llama-3.1-70b-instruct'}\n"
                 "build: {max_seq_len: 8192, max_input_len: 4096}\n")
    out = cli("plan", str(r), "--gpu", "h100")
    assert out.returncode == 3
    assert "per GPU, H100 SXM has 80 GiB; try parallelism.tp: 2 or quantization.weights: fp8 (" in out.stdout
    assert "[memory.fit]" in out.stdout
    assert "feasible: NO" in out.stdout


def test_unknown_gpu_exit_2(cli) -> None:
    r = cli("plan", str(RECIPES / "qwen2.5-7b.yaml"), "--gpu", "h10")
    assert r.returncode == 2 and "did you mean" in r.stderr and "Traceback" not in r.stderr


def test_bad_arguments_exit_2(cli) -> None:
    r = cli("plan")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert cli().returncode == 2


def test_gpus_and_schema(cli) -> None:
    g = json.loads(cli("gpus", "--json").stdout)["gpus"]
    keys = {x["key"] for x in g}
    assert {"h100-sxm", "cpu"} <= keys and len(g) >= 17
    assert "H100 SXM" in cli("gpus").stdout
    schema = json.loads(cli("schema").stdout)
    assert schema["additionalProperties"] is False
    assert "recipe" in schema["required"] and "quantization" in schema["properties"]
    assert schema["$defs"]["BuildSettings"]["properties"]["max_input_len"]["description"] == "Longest prompt in tokens."


def test_planning_path_imports_nothing_heavy() -> None:
    code = (
        "import sys\n"
        "from trtbuild.cli import main\n"
        f"rc = main(['plan', {str(RECIPES / 'llama-3.1-70b-fp8-tp4.yaml')!r}, '--gpu', 'h100', '--json'])\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'modelopt', 'jinja2', 'tritonclient', 'numpy', "
        "'safetensors', 'huggingface_hub', 'oras') if m in sys.modules)\n"
        "print('HEAVY', heavy, rc, file=sys.stderr)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert "HEAVY [] 0" in r.stderr, r.stderr
