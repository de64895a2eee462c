"""Planner diagnostics of the chosen backend (rule ids ``backend.*``, then the backend's own ``vllm.*`` /
``llmapi.*`` mapping findings).

    backend_rules(backend, recipe, gpu) -> list[Finding]     before the plan exists (the recipe as resolved)
    settings_findings(backend, plan) -> list[PlanDiagnostic]  what the backend's settings mapping reports

    backend.hardware   error    the backend does not run on this target's hardware (llmapi on cpu, ...)
    backend.format     error    a quantization format the backend cannot load from what the stages produce
    backend.setting    warning  a build.* setting only trtllm-build reads, set on a backend without an engine
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from trtbuild.backends import BACKENDS, ENGINE_SETTINGS, Backend

if TYPE_CHECKING:
    from trtbuild.catalog.gpus import GpuSpec
    from trtbuild.plan.planner import BuildPlan, PlanDiagnostic
    from trtbuild.plan.rules import Finding


def _on(hardware: str) -> str:
    return ", ".join(b.name for b in BACKENDS.values() if hardware in b.hardware)


def backend_rules(backend: Backend, recipe: Any, gpu: GpuSpec) -> list[Finding]:
    from trtbuild.plan.rules import Finding
    from trtbuild.recipe.schema import BuildSettings

    out: list[Finding] = []
    hardware = "cpu" if gpu.reference else "gpu"
    if hardware not in backend.hardware:
        where = "the CPU" if hardware == "cpu" else f"a GPU ({gpu.name})"
        out.append(Finding("backend.hardware", "error",
                           f"the {backend.name} backend does not run on {where}; backends for this target: "
                           f"{_on(hardware)}", "backend"))
        return out
    q = recipe.quantization
    if q.weights not in backend.weights:
        engine = " (quantized checkpoints are built for the trtllm_engine backend only)" if not backend.has_engine \
            else ""
        out.append(Finding("backend.format", "error",
                           f"the {backend.name} backend cannot load {q.weights} weights{engine}; it serves: "
                           f"{', '.join(backend.weights)}", "quantization.weights"))
    if q.kv_cache not in backend.kv_cache:
        out.append(Finding("backend.format", "error",
                           f"the {backend.name} backend has no {q.kv_cache} KV cache; it serves: "
                           f"{', '.join(backend.kv_cache)}", "quantization.kv_cache"))
    if not backend.has_engine:
        defaults = BuildSettings()
        changed = [k for k in ENGINE_SETTINGS if getattr(recipe.build, k) != getattr(defaults, k)]
        if changed:
            out.append(Finding("backend.setting", "warning",
                               f"{', '.join('build.' + k for k in changed)}: read by trtllm-build only; the "
                               f"{backend.name} backend builds no engine and ignores "
                               f"{'it' if len(changed) == 1 else 'them'}", "build"))
    return out


def settings_findings(backend: Backend, plan: BuildPlan) -> list[PlanDiagnostic]:
    """The backend's mapping findings (what of the recipe it cannot carry over), for `trtbuild plan`."""
    if backend.name == "vllm":
        from trtbuild.backends.vllm.settings import vllm_settings

        return list(vllm_settings(plan).findings)
    if backend.name == "llmapi":
        from trtbuild.backends.llmapi.settings import llmapi_settings

        return list(llmapi_settings(plan).findings)
    return []
