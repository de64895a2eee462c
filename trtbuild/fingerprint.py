"""Stage fingerprints: each stage's key is the sha256 of everything that can change its output.

Inputs per stage (all known before the stage runs):

    fetch       model source, resolved revision, every model file's sha256
    checkpoint  fetch key, recipe fields it reads, calibration data digest, ModelOpt/torch/transformers versions
    engine      checkpoint key, build settings, target SM, TensorRT-LLM/TensorRT versions or image digest
    repository  engine key (or fetch key on the reference target), runtime/serving settings,
                template + model-code digest, trtbuild's repository stage version

The inputs are kept next to the key so that ``explain`` can say *why* a key changed
("quantization.calibration.samples 512 → 1024"; "toolchain.tensorrt_llm 1.2.0 → 1.2.1").
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from trtbuild.canon import canonical_digest
from trtbuild.plan.planner import STAGE_VERSIONS, BuildPlan


@dataclass(frozen=True)
class StageFingerprint:
    stage: str
    key: str
    inputs: dict[str, Any] = field(compare=False)

    def to_json(self) -> dict[str, Any]:
        return {"stage": self.stage, "key": self.key, "inputs": self.inputs}


@functools.cache
def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "absent"


def package_versions(*names: str) -> dict[str, str]:
    """Installed versions read from package metadata (no import of the packages themselves)."""
    return {name: _version(name) for name in names}


def template_digest() -> str:
    """Digest of everything that renders the repository: templates, topologies, model code.
    Computed once per process (the files do not change under a running build)."""
    return _template_digest()


@functools.lru_cache(maxsize=1)
def _template_digest() -> str:
    h = hashlib.sha256()
    from trtbuild.resources import templates_dir, topologies_dir

    pkg = Path(__file__).resolve().parent
    roots = [templates_dir(), topologies_dir(), pkg / "repository"]
    for root in roots:
        if not root.is_dir():
            continue
        for p in sorted(root.rglob("*")):
            if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".pyc",):
                h.update(f"{root.name}/{p.relative_to(root).as_posix()}".encode() + b"\0")
                h.update(p.read_bytes() + b"\0")
    return h.hexdigest()


@dataclass(frozen=True)
class FingerprintInputs:
    """What the fingerprints need beyond the plan; gathered by the caller (stat-cached digests)."""

    model_files: Mapping[str, str]               # relpath -> sha256 of every model/tokenizer file used
    revision: str | None = None                  # resolved commit for hf:// sources
    calibration_digest: str | None = None        # digest of the calibration samples' source
    toolchain: Mapping[str, str] = field(default_factory=dict)   # tensorrt_llm, tensorrt, image
    templates: str = ""                          # template_digest()
    checkpoint_versions: Mapping[str, str] = field(default_factory=dict)


def fingerprint_stages(plan: BuildPlan, fin: FingerprintInputs) -> dict[str, StageFingerprint]:
    """Keys and inputs of every stage of ``plan``, chained: a stage's key includes its upstream's."""
    s = plan.settings
    out: dict[str, StageFingerprint] = {}

    def add(stage: str, inputs: dict[str, Any]) -> StageFingerprint:
        inputs = {"stage_version": STAGE_VERSIONS[stage], **inputs}
        fp = StageFingerprint(stage, canonical_digest(inputs), inputs)
        out[stage] = fp
        return fp

    fetch = add("fetch", {"model": {"source": s.model.source, "revision": fin.revision,
                                    "files": dict(sorted(fin.model_files.items()))}})
    upstream = fetch
    ck = plan.stage("checkpoint")
    if ck is not None:
        p = ck.params
        quant: dict[str, Any] = {"weights": p["weights"], "kv_cache": p["kv_cache"]}
        if "awq_block_size" in p:
            quant["awq_block_size"] = p["awq_block_size"]
        if "calibration" in p:
            quant["calibration"] = {**p["calibration"], "data_sha256": fin.calibration_digest}
        upstream = add("checkpoint", {
            "upstream": {"fetch": fetch.key}, "dtype": p["dtype"], "quantization": quant,
            "parallelism": {"tp": p["tp"], "pp": p["pp"]},
            "model": {"architecture": p["architecture"], "decoder_type": p["decoder_type"]},
            "versions": dict(fin.checkpoint_versions)})
    en = plan.stage("engine")
    if en is not None:
        upstream = add("engine", {"upstream": {"checkpoint": upstream.key}, "build": dict(en.params),
                                  "toolchain": dict(fin.toolchain)})
    rp = plan.stage("repository")
    if rp is not None:
        p = rp.params
        add("repository", {"upstream": {upstream.stage: upstream.key}, "runtime": p["runtime"],
                           "serving": p["serving"],
                           "repository": {k: v for k, v in p.items() if k not in ("runtime", "serving")},
                           "templates": fin.templates})
    return out


def _flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(obj, Mapping):
        flat: dict[str, Any] = {}
        for k, v in obj.items():
            part = str(k)
            name = f"{prefix}[{part}]" if "." in part or "/" in part else (f"{prefix}.{part}" if prefix else part)
            flat.update(_flatten(v, name))
        return flat
    if isinstance(obj, (list, tuple)):
        return {prefix: json.dumps(obj, default=str)}
    return {prefix: obj}


def _show(v: Any) -> str:
    if isinstance(v, str) and len(v) == 64 and all(c in "0123456789abcdef" for c in v):
        return v[:12]
    return json.dumps(v, default=str) if not isinstance(v, str) else v


def explain(old: Mapping[str, Any] | None, new: Mapping[str, Any], limit: int = 6) -> list[str]:
    """Why a stage's inputs differ: ['quantization.calibration.samples 512 → 1024', ...]."""
    if old is None:
        return ["never built"]
    a, b = _flatten(old), _flatten(new)
    reasons: list[str] = []
    upstream = [k for k in sorted(set(a) | set(b)) if k.startswith("upstream.") and a.get(k) != b.get(k)]
    for k in sorted(set(a) | set(b)):
        if k.startswith("upstream.") or a.get(k) == b.get(k):
            continue
        if k not in a:
            reasons.append(f"{k} added ({_show(b[k])})")
        elif k not in b:
            reasons.append(f"{k} removed (was {_show(a[k])})")
        else:
            reasons.append(f"{k} {_show(a[k])} → {_show(b[k])}")
    if upstream and not reasons:
        reasons.append(f"{upstream[0].split('.', 1)[1]} stage changed")
    if len(reasons) > limit:
        reasons = reasons[:limit] + [f"... and {len(reasons) - limit} more"]
    return reasons
