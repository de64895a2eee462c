"""What the repository is rendered from besides the plan: tokenizer files, the engine's config.json,
the Hugging Face checkpoint of the reference. Reads small JSON files only; never imports torch."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trtbuild.errors import RepositoryError
from trtbuild.fsutil import sha256_file
from trtbuild.model.config import TOKENIZER_FILES
from trtbuild.plan.planner import BuildPlan
from trtbuild.repository.manifest import EngineLimits

HF_WEIGHT_SUFFIXES = (".safetensors", ".json", ".model", ".txt", ".jinja")


@dataclass(frozen=True)
class TokenizerInfo:
    dir: Path
    files: tuple[str, ...]
    end_ids: tuple[int, ...]
    pad_id: int


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise RepositoryError(f"{path}: cannot read: {exc}") from None
    return data if isinstance(data, dict) else {}


def _token_ids(tokenizer_dir: Path) -> dict[str, int]:
    """Token text → id for special/added tokens (and the vocab when small enough to matter)."""
    data = _read_json(tokenizer_dir / "tokenizer.json")
    ids: dict[str, int] = {}
    vocab = (data.get("model") or {}).get("vocab")
    if isinstance(vocab, dict):
        ids.update({k: int(v) for k, v in vocab.items() if isinstance(v, int)})
    for tok in data.get("added_tokens") or []:
        ids[str(tok.get("content"))] = int(tok.get("id"))
    for key, value in _read_json(tokenizer_dir / "added_tokens.json").items():
        ids[key] = int(value)
    return ids


def _token_text(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


def _as_ids(value: Any) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        return (value,)
    if isinstance(value, list):
        return tuple(int(v) for v in value if isinstance(v, int) and not isinstance(v, bool))
    return ()


def read_tokenizer(plan: BuildPlan, tokenizer_dir: Path, hf_model_dir: Path | None = None) -> TokenizerInfo:
    """Find the tokenizer files and resolve the end and pad ids (recipe first, then the model)."""
    tokenizer_dir = Path(tokenizer_dir)
    if not tokenizer_dir.is_dir():
        raise RepositoryError(f"tokenizer directory {tokenizer_dir} does not exist")
    files = tuple(name for name in TOKENIZER_FILES if (tokenizer_dir / name).is_file())
    if not any(f in files for f in ("tokenizer.json", "tokenizer.model", "spiece.model", "vocab.json")):
        raise RepositoryError(f"{tokenizer_dir}: no tokenizer files (tokenizer.json, tokenizer.model or vocab.json)")
    serving = plan.settings.serving
    config_dirs = [d for d in (tokenizer_dir, hf_model_dir) if d is not None]
    tok_config = _read_json(tokenizer_dir / "tokenizer_config.json")
    specials = {**_read_json(tokenizer_dir / "special_tokens_map.json"), **tok_config}
    names = _token_ids(tokenizer_dir)

    end_ids: tuple[int, ...] = tuple(serving.end_ids or ())
    for d in config_dirs:
        if not end_ids:
            end_ids = _as_ids(_read_json(Path(d) / "generation_config.json").get("eos_token_id"))
        if not end_ids:
            end_ids = _as_ids(_read_json(Path(d) / "config.json").get("eos_token_id"))
    if not end_ids:
        eos = _token_text(specials.get("eos_token"))
        if eos is not None and eos in names:
            end_ids = (names[eos],)
    if not end_ids:
        raise RepositoryError("no end-of-sequence id: set serving.end_ids in the recipe "
                              "(neither generation_config.json, config.json nor the tokenizer names one)")

    pad_id = serving.pad_id
    if pad_id is None:
        pad = _token_text(specials.get("pad_token"))
        pad_id = names.get(pad) if pad is not None else None
    if pad_id is None:
        pad_id = end_ids[0]
    return TokenizerInfo(dir=tokenizer_dir, files=files, end_ids=end_ids, pad_id=int(pad_id))


def read_engine_limits(plan: BuildPlan, engine_dir: Path | None) -> EngineLimits:
    """Limits from the engine's config.json when it exists, else from the plan."""
    s = plan.settings
    b, p = s.build, s.parallelism
    reference = bool(plan.target.get("reference"))
    base = dict(path=None if reference or engine_dir is None else str(engine_dir), version=None,
                max_batch_size=b.max_batch_size, max_input_len=b.max_input_len,
                max_seq_len=int(b.max_seq_len or plan.model["max_position_embeddings"]),
                max_beam_width=b.max_beam_width, tp=1 if reference else p.tp, pp=1 if reference else p.pp,
                logits_dtype=b.logits_dtype, paged_context_fmha=b.paged_context_fmha)
    config_path = Path(engine_dir) / "config.json" if engine_dir is not None and not reference else None
    if config_path is None or not config_path.is_file():
        return EngineLimits(source="plan", **base)
    data = _read_json(config_path)
    build = data.get("build_config") or {}
    mapping = (data.get("pretrained_config") or {}).get("mapping") or {}
    plugin = build.get("plugin_config") or {}
    if not build:
        raise RepositoryError(f"{config_path}: no build_config (not a TensorRT-LLM engine config.json?)")

    def pick(key: str, fallback: Any, source: dict[str, Any] = build) -> Any:
        value = source.get(key)
        return fallback if value is None else value

    logits = str(pick("logits_dtype", base["logits_dtype"], data.get("pretrained_config") or {}))
    return EngineLimits(
        source="engine-config", path=str(engine_dir), version=data.get("version"),
        max_batch_size=int(pick("max_batch_size", base["max_batch_size"])),
        max_input_len=int(pick("max_input_len", base["max_input_len"])),
        max_seq_len=int(pick("max_seq_len", base["max_seq_len"])),
        max_beam_width=int(pick("max_beam_width", base["max_beam_width"])),
        tp=int(pick("tp_size", base["tp"], mapping)), pp=int(pick("pp_size", base["pp"], mapping)),
        logits_dtype=logits, paged_context_fmha=bool(pick("use_paged_context_fmha", base["paged_context_fmha"], plugin)))


def hf_model_files(hf_model_dir: Path) -> list[Path]:
    """The files of a checkpoint the reference needs (weights, configs, tokenizer); no pickles."""
    hf_model_dir = Path(hf_model_dir)
    if not (hf_model_dir / "config.json").is_file():
        raise RepositoryError(f"{hf_model_dir}: not a Hugging Face checkpoint (no config.json)")
    files = sorted(p for p in hf_model_dir.iterdir() if p.is_file() and p.name.endswith(HF_WEIGHT_SUFFIXES))
    if not any(p.name.endswith(".safetensors") for p in files):
        raise RepositoryError(f"{hf_model_dir}: no .safetensors weights (the reference loads safetensors only)")
    return files


def digests(paths: list[Path]) -> dict[str, str]:
    return {p.name: sha256_file(p) for p in paths}
