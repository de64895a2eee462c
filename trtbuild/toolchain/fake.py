"""A FAKE ``trtllm-build`` for tests and demos: same command line, no TensorRT, no GPU.

It parses its arguments with the 1.2 flag set (:mod:`trtbuild.toolchain.trtllm_cli`), so it refuses unknown
flags and invalid values with trtllm-build's own argparse message and exit status 2; it fails like
trtllm-build on the conflicts its ``main()`` checks (exit 1); and it writes a structurally valid engine
directory: ``config.json`` (``version``, ``pretrained_config`` from the checkpoint, ``build_config`` from the
flags after the builder's rewrites in :mod:`trtbuild.toolchain.semantics`) and ``rank{r}.engine`` files whose
bytes say FAKE. Everything it produces is labelled fake.

Use :class:`FakeExecutor` in-process, or run ``python -m trtbuild.toolchain.fake ARGS`` as a stand-in program.
"""

from __future__ import annotations

import json
import os
import queue
import sys
import threading
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from trtbuild.toolchain.detect import GpuInfo, ToolchainInfo
from trtbuild.toolchain.executors import BuildJob, timing_cache_in_workdir, workdir_timing_cache
from trtbuild.toolchain.process import ProcessHandle, RunResult, run_logged
from trtbuild.toolchain.semantics import adjust
from trtbuild.toolchain.trtllm_cli import FEATURE_FLAGS, PLUGIN_FLAGS, TrtllmUsageError, parse_args

FAKE_TRTLLM_VERSION = "1.2.1"
FAKE_TENSORRT_VERSION = "10.14.1.48"
ENGINE_MAGIC = b"TRTBUILD-FAKE-ENGINE\n"
# A subset of tensorrt_llm.models.MODEL_MAP (1.2) that covers every architecture trtbuild plans for.
MODEL_MAP = frozenset({
    "LlamaForCausalLM", "MistralForCausalLM", "MixtralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM",
    "Qwen3MoeForCausalLM", "QWenForCausalLM", "GemmaForCausalLM", "Gemma2ForCausalLM", "Gemma3ForCausalLM",
    "PhiForCausalLM", "Phi3ForCausalLM", "FalconForCausalLM", "GPTJForCausalLM", "GPTForCausalLM",
    "MedusaForCausalLM", "EagleForCausalLM", "ReDrafterForLLaMALM",
})


class FakeBuildFailure(Exception):
    """A failure the real tool reports with a traceback and exit status 1."""


def _plugin_value(name: str, value: Any) -> Any:
    if name in FEATURE_FLAGS:
        return value == "enable"
    return None if value == "disable" else value


def requested_build_config(args: Any) -> dict[str, Any]:
    """The ``build_config`` trtllm-build's ``main()`` assembles from parsed arguments (before the builder)."""
    plugin: dict[str, Any] = {name: _plugin_value(name, getattr(args, name)) for name in PLUGIN_FLAGS}
    plugin.update({name: _plugin_value(name, getattr(args, name)) for name in FEATURE_FLAGS})
    plugin.update({
        "tokens_per_block": args.tokens_per_block, "paged_kv_cache": None, "manage_weights": args.fast_build,
        "smooth_quant_plugins": True, "smooth_quant_gemm_plugin": None, "identity_plugin": None,
        "qserve_gemm_plugin": None, "layernorm_quantization_plugin": None, "rmsnorm_quantization_plugin": None,
        "weight_only_groupwise_quant_matmul_plugin": None, "weight_only_quant_matmul_plugin": None,
        "quantize_per_token_plugin": False, "quantize_tensor_plugin": False,
    })
    if hasattr(args, "paged_kv_cache"):
        plugin["paged_kv_cache"] = args.paged_kv_cache == "enable"
    return {
        "max_input_len": args.max_input_len, "max_seq_len": args.max_seq_len, "opt_batch_size": 8,
        "max_batch_size": args.max_batch_size, "max_beam_width": args.max_beam_width,
        "max_num_tokens": args.max_num_tokens, "opt_num_tokens": args.opt_num_tokens,
        "max_prompt_embedding_table_size": args.max_prompt_embedding_table_size,
        "kv_cache_type": getattr(args, "kv_cache_type", None),
        "gather_context_logits": args.gather_context_logits,
        "gather_generation_logits": args.gather_generation_logits, "strongly_typed": True,
        "force_num_profiles": None, "profiling_verbosity": args.profiling_verbosity,
        "enable_debug_output": args.enable_debug_output, "max_draft_len": args.max_draft_len,
        "speculative_decoding_mode": 1, "use_refit": False,
        "input_timing_cache": args.input_timing_cache, "output_timing_cache": args.output_timing_cache,
        "lora_config": {"lora_dir": args.lora_dir or [], "lora_ckpt_source": args.lora_ckpt_source,
                        "max_lora_rank": args.max_lora_rank, "lora_target_modules": args.lora_target_modules or []},
        "weight_sparsity": args.weight_sparsity, "weight_streaming": args.weight_streaming,
        "plugin_config": plugin, "use_strip_plan": args.strip_plan,
        "max_encoder_input_len": args.max_encoder_input_len, "monitor_memory": args.monitor_memory,
        "use_mrope": False,
    }


def fake_trtllm_build(argv: Sequence[str], *, sm: int = 90, cwd: Path | None = None,
                      out: Callable[[str], None] = print) -> int:
    """Behave like ``trtllm-build ARGV`` on an SM ``sm`` GPU; print through ``out``; return the exit status."""
    try:
        args = parse_args(argv)
    except TrtllmUsageError as exc:
        for line in str(exc).splitlines():
            out(line)
        return exc.exit_code
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    try:
        _build(args, sm=sm, cwd=Path(cwd) if cwd else Path.cwd(), out=out)
    except Exception as exc:  # the real tool dies with a traceback
        out("Traceback (most recent call last):")
        out(f"  (fake trtllm-build) {type(exc).__name__}: {exc}")
        return 1
    return 0


def _resolve(path: str, cwd: Path) -> Path:
    p = Path(path)
    return p if p.is_absolute() else cwd / p


def _build(args: Any, *, sm: int, cwd: Path, out: Callable[[str], None]) -> None:
    out(f"[TensorRT-LLM] TensorRT LLM version: {FAKE_TRTLLM_VERSION} (FAKE toolchain: no TensorRT, no GPU)")
    out("[TRT-LLM] [W] Option --gather_generation_logits is deprecated, a build flag is not required anymore. "
        "Use --output_generation_logits at runtime instead.")
    if args.gather_all_token_logits:
        args.gather_context_logits = args.gather_generation_logits = True
    if args.gather_context_logits and args.max_draft_len > 0:
        raise FakeBuildFailure("Gather context logits is not support with draft len > 0.")
    if hasattr(args, "paged_kv_cache"):
        out("[TRT-LLM] [W] Option --paged_kv_cache is deprecated, use --kv_cache_type=paged/disabled instead.")
    source = args.checkpoint_dir if args.checkpoint_dir is not None else args.model_config
    if source is None:
        raise AttributeError("'NoneType' object has no attribute 'lower'")
    if source.lower().endswith(".json"):
        config_path, ckpt_dir = _resolve(source, cwd), None
    else:
        ckpt_dir = _resolve(source, cwd)
        config_path = ckpt_dir / "config.json"
    pretrained: dict[str, Any] = json.loads(config_path.read_text())
    if args.multiple_profiles == "enable" and args.opt_num_tokens is not None:
        raise FakeBuildFailure("multiple_profiles is enabled, while opt_num_tokens is set. "
                               "They are not supposed to be working in the same time for now.")
    if args.streamingllm == "enable":
        raise FakeBuildFailure("StreamingLLM is no longer supported")
    arch = pretrained.get("architecture")
    if args.pp_reduce_scatter == "enable" and arch != "MixtralForCausalLM":
        raise FakeBuildFailure("PP reduce scatter is only supported in the mixtral model.")
    if arch not in MODEL_MAP:
        raise FakeBuildFailure(f"Unsupported model architecture: {arch}")
    if args.logits_dtype is not None:
        pretrained["logits_dtype"] = args.logits_dtype
    mapping = dict(pretrained.get("mapping") or {})
    mapping.pop("rank", None)
    tp, pp, cp = (int(mapping.get(k, 1)) for k in ("tp_size", "pp_size", "cp_size"))
    world = int(mapping.get("world_size", tp * pp * cp))
    mapping["world_size"] = world
    pretrained["mapping"] = mapping
    if ckpt_dir is not None:
        for rank in range(world):
            if not (ckpt_dir / f"rank{rank}.safetensors").is_file():
                raise FileNotFoundError(f"No such file or directory: '{ckpt_dir / f'rank{rank}.safetensors'}'")
    requested = requested_build_config(args)
    kv_paged = requested["plugin_config"]["paged_kv_cache"]
    if requested["kv_cache_type"] is not None and kv_paged is not None \
            and kv_paged != (requested["kv_cache_type"] == "PAGED"):
        raise AssertionError("--paged_kv_cache contradicts --kv_cache_type")
    if requested["kv_cache_type"] is None and kv_paged is False:
        requested["kv_cache_type"] = "CONTINUOUS"
    recorded, changes = adjust(requested, pretrained, sm=sm)
    for change in changes:
        out(f"[TRT-LLM] [W] Overriding {change.field} to {change.recorded} ({change.reason})")
    output_dir = _resolve(args.output_dir, cwd)
    output_dir.mkdir(parents=True, exist_ok=True)
    for rank in range(world):
        out(f"[TRT-LLM] [I] Build TensorRT engine Unnamed Network {rank} (FAKE)")
        header = json.dumps({"fake": True, "rank": rank, "architecture": arch, "sm": sm,
                             "version": FAKE_TRTLLM_VERSION}, sort_keys=True).encode()
        (output_dir / f"rank{rank}.engine").write_bytes(ENGINE_MAGIC + header + b"\n" + bytes(range(256)) * 4)
    config = {"version": FAKE_TRTLLM_VERSION, "pretrained_config": pretrained, "build_config": recorded}
    (output_dir / "config.json").write_text(json.dumps(config, indent=4))
    if args.output_timing_cache:
        cache = _resolve(args.output_timing_cache, cwd)
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_bytes(b"TRTBUILD-FAKE-TIMING-CACHE\n")
        out(f"[TRT-LLM] [I] Timing cache serialized to {cache}")
    out("[TRT-LLM] [I] Total time of building all engines: 00:00:00")


class _ThreadHandle:
    """A ProcessHandle for a function running on a thread (the in-process fake tool)."""

    def __init__(self, target: Callable[[Callable[[str], None]], int]):
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._rc: int | None = None
        self._thread = threading.Thread(target=self._main, args=(target,), daemon=True, name="fake-trtllm-build")
        self._thread.start()

    def _main(self, target: Callable[[Callable[[str], None]], int]) -> None:
        try:
            self._rc = target(self._lines.put)
        except BaseException:  # pragma: no cover - the fake catches its own failures
            self._lines.put(traceback.format_exc())
            self._rc = 1
        finally:
            self._lines.put(None)

    def lines(self) -> Iterator[str]:
        while (line := self._lines.get()) is not None:
            yield line

    def wait(self, timeout: float | None) -> int | None:
        self._thread.join(timeout)
        return None if self._thread.is_alive() else self._rc

    def kill(self) -> None:
        self._thread.join(1)


class FakeExecutor:
    """An executor whose ``trtllm-build`` is the fake one, run in-process on a pretend GPU."""

    kind = "fake"

    def __init__(self, *, gpu_name: str = "FAKE GPU", sm: int = 90, version: str = FAKE_TRTLLM_VERSION,
                 tensorrt_version: str = FAKE_TENSORRT_VERSION, gpu_count: int = 1):
        self.gpu_name = gpu_name
        self.sm = sm
        self.version = version
        self.tensorrt_version = tensorrt_version
        self.gpu_count = gpu_count

    def tool_paths(self, checkpoint_dir: Path, output_dir: Path,
                   timing_cache: Path | None) -> tuple[Path, Path, Path | None]:
        return Path(checkpoint_dir).absolute(), Path(output_dir).absolute(), workdir_timing_cache(timing_cache)

    def command_lines(self, job: BuildJob) -> list[list[str]]:
        return [list(job.argv)]

    def probe(self) -> ToolchainInfo:
        gpus = tuple(GpuInfo(index=i, name=f"{self.gpu_name} (fake)", sm=self.sm) for i in range(self.gpu_count))
        return ToolchainInfo(executor="fake", trtllm_version=self.version, tensorrt_version=self.tensorrt_version,
                             gpus=gpus, trtllm_build="trtllm-build (fake, in-process)", python=sys.executable,
                             gpu_source="fake", fake=True)

    def _runner(self, argv: Sequence[str], cwd: Path | None, env: Mapping[str, str] | None) -> ProcessHandle:
        sm = self.sm
        return _ThreadHandle(lambda out: fake_trtllm_build(list(argv)[1:], sm=sm, cwd=cwd, out=out))

    def run(self, job: BuildJob, on_line: Callable[[str], None] | None = None) -> RunResult:
        with timing_cache_in_workdir(job):  # as the local executor runs the real one
            return run_logged(self.command_lines(job)[0], runner=self._runner, log_path=job.log_path,
                              timeout_s=job.timeout_s, on_line=on_line, cwd=job.work_dir, what="trtllm-build (fake)")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m trtbuild.toolchain.fake ARGS``: the fake as a program (SM from $TRTBUILD_FAKE_SM, default 90)."""
    sm = int(os.environ.get("TRTBUILD_FAKE_SM", "90"))
    return fake_trtllm_build(list(sys.argv[1:] if argv is None else argv), sm=sm,
                             out=lambda line: print(line, flush=True))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
