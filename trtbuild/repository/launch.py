"""How tritonserver is started on a repository: per-rank arguments for launch.sh and `trtbuild serve`.

One process for world size 1. For tp x pp > 1, `mpirun` starts one tritonserver per rank (leader
mode): each rank gets its own Python-backend shared-memory prefix, and ranks > 0 load only
`tensorrt_llm` (they never finish loading it, so they never open the ports).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import PurePosixPath

TRTLLM_MODEL = "tensorrt_llm"


def private_cwd(engine_ref: str | None) -> tuple[str, str | None]:
    """Where tritonserver runs, inside an empty private directory RUN: (cwd, engine link), both relative to RUN.

    Not in the repository: Triton's Python stubs put their working directory first on `sys.path`, so
    a `json.py` lying there would be imported by every Python model. The C++ backend reads a relative
    `gpt_model_path` (``../engine`` in a compiled artifact) against the working directory, so a link at
    RUN/<link> pointing to the repository's engine keeps it resolving; None when nothing needs one.
    """
    if not engine_ref or os.path.isabs(engine_ref):
        return "cwd", None
    parts = PurePosixPath(os.path.normpath(engine_ref)).parts
    ups = next((i for i, part in enumerate(parts) if part != ".."), len(parts))
    cwd = PurePosixPath("cwd", *(["d"] * max(ups - 1, 0)))
    return str(cwd), os.path.normpath(str(cwd / engine_ref))


def rank_arguments(world_size: int, *, tritonserver: str, models_dir: str, http_port: str, grpc_port: str,
                   metrics_port: str, shm_prefix: str = "prefix", extra: Sequence[str] = ()) -> list[list[str]]:
    """The tritonserver command line of every rank (tokens already quoted as the caller needs)."""
    if world_size < 1:
        raise ValueError(f"world size must be at least 1, got {world_size}")
    ranks = []
    for rank in range(world_size):
        args = [tritonserver, f"--model-repository={models_dir}", f"--http-port={http_port}",
                f"--grpc-port={grpc_port}", f"--metrics-port={metrics_port}", "--disable-auto-complete-config",
                f"--backend-config=python,shm-region-prefix-name={shm_prefix}{rank}_"]
        if rank > 0:
            args += ["--model-control-mode=explicit", f"--load-model={TRTLLM_MODEL}"]
        ranks.append(args + list(extra))
    return ranks


def script_ranks(world_size: int) -> list[list[str]]:
    """Rank arguments for launch.sh: shell variables, quoted for bash."""
    return rank_arguments(world_size, tritonserver='"$TRITONSERVER"', models_dir='"$HERE/models"',
                          http_port='"$HTTP_PORT"', grpc_port='"$GRPC_PORT"', metrics_port='"$METRICS_PORT"')


def command_line(ranks: list[list[str]], *, mpirun: str = "mpirun") -> list[str]:
    """One argv: the single rank, or `mpirun --allow-run-as-root -n 1 <rank0> : -n 1 <rank1> ...`."""
    if len(ranks) == 1:
        return list(ranks[0])
    argv = [mpirun, "--allow-run-as-root"]
    for i, rank in enumerate(ranks):
        if i:
            argv.append(":")
        argv += ["-n", "1", *rank]
    return argv
