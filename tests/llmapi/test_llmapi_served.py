"""The LLM-API repository served by a real tritonserver (nvidia-pytriton) with the TEST DOUBLE of
`tensorrt_llm` (tests/llmapi/fake_trtllm: fixture-checked arguments, transformers on CPU).

What this proves: the generated model loads, passes LLM(...) / SamplingParams(...) / KvCacheRetentionConfig
arguments the 1.2 fixtures accept (the double refuses anything else, and a refused argument fails the load
or the request), and implements the client contract on top of the LLM API's streaming interface. The same
checks run against the real TensorRT-LLM in test_llmapi_gpu.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from llmapi_checks import CHECKS

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("check", sorted(CHECKS))
def test_client_contract(llmapi_server: Any, check: str) -> None:
    CHECKS[check](llmapi_server)


def test_the_double_took_the_recipes_retention_rule(llmapi_server: Any) -> None:
    from vllm_helpers import responses

    _, error = responses(llmapi_server, "ensemble", "Hello world", 4, system_prompt="You are terse.")
    assert error is None
    log = llmapi_server.log_path.read_text(errors="replace")
    line = [ln for ln in log.splitlines() if "[tensorrt_llm TEST DOUBLE] retention" in ln][-1]
    # system_prompt rule: priority 90 for 10 minutes over the system prompt's tokens, starting at 0
    assert "KvCacheRetentionConfig([(0, " in line and ", 90, 600000)]" in line


def test_the_double_refuses_an_unknown_llm_argument(tmp_path: Any, llmapi_repo: Any, llmapi_double_env: Any) -> None:
    """The double is strict like TorchLlmArgs: an edited model.yaml with an unknown key fails the load."""
    import shutil

    import yaml
    from llmapi_helpers import serve_with_double

    from trtbuild.errors import RepositoryError

    repo = tmp_path / "repo"
    shutil.copytree(llmapi_repo, repo, symlinks=True)
    path = repo / "models/tensorrt_llm_bls/1/model.yaml"
    data = yaml.safe_load(path.read_text())
    data["enable_prefix_caching"] = True          # vLLM's name, not TensorRT-LLM's
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(RepositoryError) as info:
        next(serve_with_double(repo, llmapi_double_env))
    assert "got invalid argument: enable_prefix_caching" in str(info.value)


def test_client_retention_ranges_become_the_requests_retention_config(llmapi_server: Any) -> None:
    from vllm_helpers import responses

    _, error = responses(llmapi_server, "ensemble", "Hello world a b c", 4, retention_token_range_starts=[0],
                         retention_token_range_ends=[2], retention_token_range_priorities=[80],
                         retention_decode_priority=10)
    assert error is None, error
    log = llmapi_server.log_path.read_text(errors="replace")
    assert [ln for ln in log.splitlines() if "TEST DOUBLE] retention" in ln][-1].endswith(
        "KvCacheRetentionConfig([(0, 2, 80, None)], 10, None)")
    _, error = responses(llmapi_server, "ensemble", "Hello world", 4, retention_token_range_starts=[0, 1],
                         retention_token_range_ends=[3, 4], retention_token_range_priorities=[50, 50])
    assert error is not None and "Token ranges must be non-overlapping." in error
