"""The heavy half of the checkpoint stage: load with transformers, quantize and export with ModelOpt.

Only :mod:`trtbuild.stages.checkpoint` imports this module, inside ``run_checkpoint``; it imports
torch at module level, so nothing on the planning path may import it.

ModelOpt 0.47 facts relied on (see facts/modelopt-0.47-on-cpu.md): preset configs are
``{"quant_cfg": [entries], "algorithm": ...}`` with *ordered* entries (later ones win), so KV-cache
entries are appended; the AWQ group size is ``block_sizes[-1]`` of the ``*weight_quantizer`` entry
(the first of two for W4A8); AWQ runs the forward loop twice (a progress task per pass).
"""

from __future__ import annotations

import contextlib
import copy
import gc
import io
import random
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from trtbuild.errors import CheckpointError
from trtbuild.formats import weight_format
from trtbuild.progress import Progress
from trtbuild.stages.calibration import CalibrationTexts, make_batches

if TYPE_CHECKING:
    from trtbuild.stages.checkpoint import CheckpointInputs

# Same quantizers as FP8_KV_CFG, 8-bit integer instead of E4M3 (ModelOpt exports kv_cache_quant_algo INT8).
INT8_KV_ENTRIES = [{"quantizer_name": "*[kv]_bmm_quantizer", "cfg": {"num_bits": 8, "axis": None}}]


@contextlib.contextmanager
def library_errors(what: str) -> Iterator[None]:
    """Capture library chatter (stdout prints, warnings); turn a failure into a CheckpointError
    that carries the captured tail. ModelOpt prints progress lines to stdout, which is the CLI's."""
    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                yield
            finally:
                for w in caught:
                    buf.write(f"{w.category.__name__}: {w.message}\n")
    except CheckpointError:
        raise
    except Exception as e:
        tail = "\n".join(buf.getvalue().strip().splitlines()[-15:])
        raise CheckpointError(f"could not {what}: {type(e).__name__}: {e}", log_tail=tail) from e


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


# --------------------------------------------------------------------------------------------- load
def load_model_and_tokenizer(inputs: CheckpointInputs, *, device: str, progress: Progress) -> tuple[Any, Any]:
    import transformers

    auto_model: Any = transformers.AutoModelForCausalLM
    auto_tokenizer: Any = transformers.AutoTokenizer
    task = progress.start(f"load {inputs.model_dir.name} ({inputs.dtype}) on {device}")
    with library_errors(f"load the model from {inputs.model_dir}"):
        model = auto_model.from_pretrained(
            str(inputs.model_dir), dtype=getattr(torch, inputs.dtype), trust_remote_code=inputs.trust_remote_code,
            use_safetensors=None if inputs.allow_pickle else True, low_cpu_mem_usage=True)
        model = model.to(device).eval()
    tokenizer = None
    if inputs.needs_calibration:
        tokenizer_dir = inputs.tokenizer_dir or inputs.model_dir
        with library_errors(f"load the tokenizer from {tokenizer_dir}"):
            tokenizer = auto_tokenizer.from_pretrained(str(tokenizer_dir), trust_remote_code=inputs.trust_remote_code)
    progress.finish(task)
    return model, tokenizer


# ----------------------------------------------------------------------------------------- quantize
def quant_config(inputs: CheckpointInputs) -> dict[str, Any] | None:
    """The ModelOpt config for the request, or None when nothing is calibrated."""
    import modelopt.torch.quantization as mtq

    cfg: dict[str, Any]
    fmt = weight_format(inputs.weights)
    if fmt.modelopt_preset is not None:
        cfg = copy.deepcopy(getattr(mtq, fmt.modelopt_preset))
    elif inputs.kv_cache != "none":
        cfg = {"quant_cfg": [{"quantizer_name": "*", "enable": False}], "algorithm": "max"}
    else:
        return None
    cfg["quant_cfg"] = list(cfg["quant_cfg"])
    if fmt.scales == "group":
        _set_awq_block_size(cfg, inputs.awq_block_size)
    if inputs.kv_cache == "fp8":
        cfg["quant_cfg"] += copy.deepcopy(list(mtq.FP8_KV_CFG["quant_cfg"]))
    elif inputs.kv_cache == "int8":
        cfg["quant_cfg"] += copy.deepcopy(INT8_KV_ENTRIES)
    return cfg


def _set_awq_block_size(cfg: dict[str, Any], block: int) -> None:
    for entry in cfg["quant_cfg"]:
        if entry.get("quantizer_name") == "*weight_quantizer" and "cfg" in entry:
            first = entry["cfg"][0] if isinstance(entry["cfg"], list) else entry["cfg"]
            first["block_sizes"] = {**first["block_sizes"], -1: block}
            return
    raise CheckpointError("ModelOpt AWQ preset has no '*weight_quantizer' entry; this ModelOpt is unsupported")


def quantize(model: Any, tokenizer: Any, inputs: CheckpointInputs, texts: CalibrationTexts | None, *,
             device: str, progress: Progress) -> dict[str, Any]:
    """Calibrate and quantize ``model`` in place when the request needs it; return a summary."""
    cfg = quant_config(inputs)
    if cfg is None or texts is None:
        return {"used": False}
    import modelopt.torch.quantization as mtq

    batches = make_batches(texts.texts, tokenizer, max_seq_len=inputs.calib_max_seq_len,
                           batch_size=inputs.calib_batch_size, device=device)
    passes = 0

    def forward_loop(m: Any) -> None:
        nonlocal passes
        passes += 1
        task = progress.start(f"calibrate {inputs.weights}/kv {inputs.kv_cache} (pass {passes})",
                              total=len(batches))
        with torch.no_grad():
            for batch in batches:
                m(**batch)
                progress.advance(task)
        progress.finish(task)

    random.seed(inputs.calib_seed)
    torch.manual_seed(inputs.calib_seed)
    with library_errors(f"quantize with quantization.weights={inputs.weights}, kv_cache={inputs.kv_cache}"):
        mtq.quantize(model, cfg, forward_loop)
    return {"used": True, "source": texts.source, "samples_requested": inputs.calib_samples,
            "samples_available": texts.available, "samples_used": len(texts.texts), "batches": len(batches),
            "passes": passes, "max_seq_len": inputs.calib_max_seq_len, "batch_size": inputs.calib_batch_size,
            "seed": inputs.calib_seed, "algorithm": str(cfg.get("algorithm"))}


# ------------------------------------------------------------------------------------------- export
def export(model: Any, inputs: CheckpointInputs, export_dir: Path, *, progress: Progress) -> None:
    """ModelOpt's TensorRT-LLM export (config.json + rank{N}.safetensors) into ``export_dir``."""
    import modelopt.torch.export as mte

    task = progress.start(f"export TensorRT-LLM checkpoint (tp={inputs.tp}, pp={inputs.pp})")
    with library_errors("export the TensorRT-LLM checkpoint"), torch.inference_mode():
        mte.export_tensorrt_llm_checkpoint(
            model, decoder_type=inputs.decoder_type, dtype=getattr(torch, inputs.dtype), export_dir=export_dir,
            inference_tensor_parallel=inputs.tp, inference_pipeline_parallel=inputs.pp)
    gc.collect()
    progress.finish(task)
