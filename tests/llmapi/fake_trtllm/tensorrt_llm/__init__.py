"""TEST DOUBLE of NVIDIA's `tensorrt_llm` package — NOT TensorRT-LLM.

Used only by tests/llmapi to serve the generated LLM-API repository on a machine without a GPU. It accepts
exactly the names, types and values the contract fixtures derived from TensorRT-LLM 1.2's source record
(trtbuild/contracts/trtllm_1_2/llmapi_*.json): `LLM(...)` refuses unknown keyword arguments as pydantic's
`extra="forbid"` args do, `SamplingParams(...)` refuses unknown keywords like the kw_only dataclass.
It generates with transformers on CPU (float32, whatever `dtype` says). The real path is the `gpu`-marked
test (tests/llmapi/test_llmapi_gpu.py), which runs the same checks where the real `tensorrt_llm` imports.
"""

from tensorrt_llm.llmapi import LLM, SamplingParams

FAKE = True
__version__ = "1.2.0+trtbuild.testdouble"
__all__ = ["FAKE", "LLM", "SamplingParams"]
