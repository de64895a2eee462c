"""Plans, checkpoints and fake processes shared by the engine-stage tests."""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

from trtbuild.catalog.gpus import all_gpus
from trtbuild.contracts import load_fixture
from trtbuild.formats import kv_algo, quant_algo
from trtbuild.plan.planner import BuildPlan, make_plan
from trtbuild.recipe.loader import LoadedRecipe, load_recipe, parse_recipe

ROOT = Path(__file__).resolve().parents[2]
RECIPES = sorted((ROOT / "recipes").glob("*.yaml"))
# trtllm-build 1.2 flags, derived from NVIDIA's commands/build.py + plugin/plugin.py (trtbuild/contracts/).
CONTRACT = load_fixture("trtllm_build_flags").data


@functools.cache
def loaded(recipe: str) -> LoadedRecipe:
    return load_recipe(ROOT / "recipes" / recipe)


@functools.cache
def plan_for(recipe: str, gpu: str) -> BuildPlan:
    return make_plan(loaded(recipe), gpu)


def plan_with(recipe: str, gpu: str, **sections: dict[str, Any]) -> BuildPlan:
    """``recipe`` with sections deep-merged over it (e.g. build={"strip_plan": True}), planned for ``gpu``."""
    path = ROOT / "recipes" / recipe
    data = yaml.safe_load(path.read_text())

    def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
        out = dict(base)
        for k, v in over.items():
            out[k] = merge(out.get(k) or {}, v) if isinstance(v, dict) else v
        return out

    data = merge(data, sections)
    return make_plan(parse_recipe(yaml.safe_dump(data, sort_keys=False), path), gpu)


def engine_plans() -> Iterator[tuple[str, str, BuildPlan]]:
    """Every (recipe, GPU) whose plan is feasible, the CPU reference target skipped."""
    for path in RECIPES:
        for gpu in all_gpus():
            if gpu.reference:
                continue
            plan = plan_for(path.name, gpu.key)
            if plan.feasible:
                yield path.stem, gpu.key, plan


def checkpoint_config(plan: BuildPlan, **over: Any) -> dict[str, Any]:
    """A minimal TensorRT-LLM checkpoint config.json for ``plan`` (as the checkpoint stage writes it)."""
    s, m = plan.settings, plan.model
    tp, pp = s.parallelism.tp, s.parallelism.pp
    config: dict[str, Any] = {
        "architecture": m["trtllm_architecture"], "dtype": s.dtype, "logits_dtype": "float32",
        "vocab_size": m["vocab_size"], "hidden_size": m["hidden_size"], "num_hidden_layers": m["num_layers"],
        "num_attention_heads": m["num_heads"], "num_key_value_heads": m["num_kv_heads"],
        "max_position_embeddings": m["max_position_embeddings"], "hidden_act": "silu",
        "position_embedding_type": "rope_gpt_neox",
        "mapping": {"world_size": tp * pp, "tp_size": tp, "pp_size": pp, "cp_size": 1, "gpus_per_node": 8},
        "quantization": {"quant_algo": quant_algo(s.quantization.weights),
                         "kv_cache_quant_algo": kv_algo(s.quantization.kv_cache), "group_size": 128},
    }
    config.update(over)
    return config


def write_checkpoint(directory: Path, plan: BuildPlan, *, ranks: int | None = None, **over: Any) -> Path:
    """Write config.json and rank{r}.safetensors (a few bytes each) for ``plan`` into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    config = checkpoint_config(plan, **over)
    (directory / "config.json").write_text(json.dumps(config, indent=2))
    world = config["mapping"]["world_size"] if ranks is None else ranks
    for r in range(world):
        (directory / f"rank{r}.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    return directory


class FakeProcess:
    """A ProcessHandle double: prints ``lines``, exits with ``rc``, or hangs until killed."""

    def __init__(self, lines: Sequence[str] = (), rc: int = 0, hang: bool = False):
        self._lines = list(lines)
        self._rc = rc
        self._hang = hang
        self._killed = threading.Event()
        self.killed = False

    def lines(self) -> Iterator[str]:
        yield from self._lines
        if self._hang:
            self._killed.wait(30)

    def wait(self, timeout: float | None) -> int | None:
        if self._hang and not self._killed.wait(timeout):
            return None
        return -9 if self._hang else self._rc

    def kill(self) -> None:
        self.killed = True
        self._killed.set()


class RecordingRunner:
    """A runner that records each call and returns a prepared FakeProcess."""

    def __init__(self, process: FakeProcess):
        self.process = process
        self.calls: list[tuple[list[str], Path | None, Any]] = []

    def __call__(self, argv: Sequence[str], cwd: Path | None, env: Any) -> FakeProcess:
        self.calls.append((list(argv), cwd, env))
        return self.process
