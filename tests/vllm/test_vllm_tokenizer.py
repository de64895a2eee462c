"""The vLLM model tokenizes like the other repositories even where transformers 5 would not.

vLLM's environment has transformers >= 5, which rebuilds a tokenizer whose tokenizer_config.json names
a class with its own pipeline (a byte-level BPE labelled `LlamaTokenizer`, as in the SmolLM2 demo
checkpoint) as a Metaspace tokenizer: other ids than transformers 4 (trtbuild's environment, used by
preprocessing, postprocessing, the BLS and the CPU reference). Found serving SmolLM2 through both
backends: the greedy outputs differed from the first token.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from vllm_helpers import VLLM_ENV, needs_vllm

from trtbuild.resources import templates_dir

pytestmark = needs_vllm
PROMPTS = ["The capital of France is", "Hello world\n", "héllo wörld ✓ 日本語 🙂"]
PROBE = """
import json, sys, types
stub = types.ModuleType("triton_python_backend_utils")
stub.TRITONSERVER_RESPONSE_COMPLETE_FINAL = 1
sys.modules["triton_python_backend_utils"] = stub
sys.path[:0] = [sys.argv[2], sys.argv[3]]
import model
from transformers import AutoTokenizer
codec = model.Codec(sys.argv[1], add_special_tokens=True, skip_special_tokens=True)
plain = AutoTokenizer.from_pretrained(sys.argv[1], local_files_only=True)
prompts = json.loads(sys.argv[4])
print(json.dumps({"codec": codec.encode_batch(prompts), "plain": [plain(p).input_ids for p in prompts],
                  "text": [codec.decode(ids) for ids in codec.encode_batch(prompts)]}))
"""


def test_codec_keeps_tokenizer_json_pipeline(tmp_path: Path, tiny_fp32_model: Path) -> None:
    from transformers import AutoTokenizer

    tok_dir = tmp_path / "tokenizer"
    tok_dir.mkdir()
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(tiny_fp32_model / name, tok_dir / name)
    config = json.loads((tok_dir / "tokenizer_config.json").read_text())
    config["tokenizer_class"] = "LlamaTokenizer"  # as the SmolLM2 GGUF conversion labels its byte-level BPE
    (tok_dir / "tokenizer_config.json").write_text(json.dumps(config))
    expected = [AutoTokenizer.from_pretrained(tok_dir)(p).input_ids for p in PROMPTS]  # transformers 4

    out = subprocess.run([str(VLLM_ENV / "bin" / "python"), "-c", PROBE, str(tok_dir), str(templates_dir() / "vllm"),
                          str(templates_dir() / "lib"), json.dumps(PROMPTS)],
                         capture_output=True, text=True, timeout=300, env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin"})
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["plain"] != expected            # transformers 5 on its own: another tokenizer
    assert got["codec"] == expected            # the vLLM model: the same ids as every other repository
    assert [t.lstrip() for t in got["text"]] == [p.lstrip() for p in PROMPTS]
