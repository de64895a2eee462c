"""The recipe's `system_prompt` retention rule on chat-templated prompts (one `text_input`, as Triton's
OpenAI frontend sends): the system turn is found from the tokenizer's chat template.

The chat templates below are short renditions, written for these tests, of how Llama 3.1, Qwen 2.5,
Mistral v0.3 and SmolLM2 lay out turns (markers, default system messages, Mistral folding the system
message into the last user turn); the real SmolLM2 tokenizer is checked too.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from .helpers import text_lib

TEXT, PROMPT = text_lib()

LLAMA3 = (
    "{{- bos_token }}"
    "{%- if messages[0]['role'] == 'system' %}{%- set system_message = messages[0]['content']|trim %}"
    "{%- set messages = messages[1:] %}{%- else %}{%- set system_message = '' %}{%- endif %}"
    "{{- '<|start_header_id|>system<|end_header_id|>\\n\\n' }}"
    "{{- 'Cutting Knowledge Date: December 2023\\nToday Date: 26 Jul 2024\\n\\n' }}"
    "{{- system_message }}{{- '<|eot_id|>' }}"
    "{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content']|trim + '<|eot_id|>' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}")


def _chatml(default_system: str) -> str:
    return ("{%- if messages[0]['role'] == 'system' %}"
            "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
            "{%- else %}{{- '<|im_start|>system\\n" + default_system + "<|im_end|>\\n' }}{%- endif %}"
            "{%- for message in messages %}{%- if message['role'] != 'system' %}"
            "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
            "{%- endif %}{%- endfor %}"
            "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}")


QWEN25 = _chatml("You are Qwen, created by Alibaba Cloud. You are a helpful assistant.")
SMOLLM2 = _chatml("You are a helpful AI assistant named SmolLM, trained by Hugging Face")
MISTRAL = (
    "{%- if messages[0]['role'] == 'system' %}{%- set system_message = messages[0]['content'] %}"
    "{%- set loop_messages = messages[1:] %}{%- else %}{%- set loop_messages = messages %}{%- endif %}"
    "{{- bos_token }}"
    "{%- for message in loop_messages %}"
    "{%- if message['role'] == 'user' %}"
    "{%- if loop.last and system_message is defined %}"
    "{{- '[INST] ' + system_message + '\\n\\n' + message['content'] + '[/INST]' }}"
    "{%- else %}{{- '[INST] ' + message['content'] + '[/INST]' }}{%- endif %}"
    "{%- elif message['role'] == 'assistant' %}{{- ' ' + message['content'] + eos_token }}{%- endif %}"
    "{%- endfor %}")

MARKERS = {"llama3": ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"],
           "qwen25": ["<|im_start|>", "<|im_end|>"], "smollm2": ["<|im_start|>", "<|im_end|>"],
           "mistral": ["[INST]", "[/INST]"]}
TEMPLATES = {"llama3": LLAMA3, "qwen25": QWEN25, "smollm2": SMOLLM2, "mistral": MISTRAL}
PARAMS = {"end_ids": "2", "pad_id": "3", "max_input_len": "400", "max_seq_len": "460",
          "enable_kv_cache_reuse": "true", "stop_words": "[]", "bad_words": "[]",
          "kv_retention": '{"rules": [{"tokens": "system_prompt", "priority": 90, "duration_ms": 600000}], '
                          '"decode_priority": 35, "decode_duration_ms": null}'}


def write_tokenizer(directory: Path, family: str) -> Path:
    """The tiny BPE tokenizer with the family's turn markers as special tokens and its chat template."""
    from tokenizers import AddedToken

    from trtbuild.demo.tiny_model import train_tokenizer

    directory.mkdir(parents=True)
    tok = train_tokenizer()
    tok.add_special_tokens([AddedToken(m, special=True, normalized=False) for m in MARKERS[family]])
    tok.save(str(directory / "tokenizer.json"))
    bos = "<|begin_of_text|>" if family == "llama3" else "<s>"
    (directory / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": bos, "eos_token": "</s>", "pad_token": "<pad>",
        "unk_token": "<unk>", "additional_special_tokens": MARKERS[family], "chat_template": TEMPLATES[family]}))
    return directory


@pytest.fixture(scope="module", params=sorted(TEMPLATES))
def family(request, tmp_path_factory) -> tuple[str, object]:
    path = write_tokenizer(tmp_path_factory.mktemp("tok") / request.param, request.param)
    return request.param, TEXT.TextCodec(str(path), add_special_tokens=False, skip_special_tokens=True)


def _build(codec, texts: list[str], systems: list[str] | None = None) -> dict[str, np.ndarray]:
    builder = PROMPT.PromptBuilder(codec, PARAMS)
    inputs = {"text_input": np.array([[t.encode()] for t in texts], dtype=object),
              "max_tokens": np.full((len(texts), 1), 4, dtype=np.int32)}
    if systems is not None:
        inputs["system_prompt"] = np.array([[s.encode()] for s in systems], dtype=object)
    [built] = builder.build([builder.read_request(inputs.get)])
    assert not isinstance(built, Exception), built
    return built


def _chat(codec, system: str | None, user: str = "What is the capital of France?") -> str:
    messages = ([{"role": "system", "content": system}] if system is not None else []) + \
        [{"role": "user", "content": user}]
    return codec.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def _expected_system_tokens(codec, prompt: str, turn) -> int:
    end = turn.end(prompt)
    return len(codec.encode_batch([prompt[:end]])[0])


def test_the_system_turn_is_found_where_the_template_keeps_it_first(family):
    name, codec = family
    turn, note = PROMPT.find_system_turn(codec.tokenizer)
    if name == "mistral":
        assert turn is None and "folds it into the last user turn" in note
        return
    assert turn is not None, note
    prompt = _chat(codec, "You are terse. Answer in one word.")
    end = turn.end(prompt)
    assert prompt[:end].endswith(("<|eot_id|>", "<|im_end|>\n")) and "You are terse" in prompt[:end]
    assert "capital" not in prompt[:end]


def test_the_system_prompt_rule_applies_to_chat_templated_prompts(family):
    name, codec = family
    prompt = _chat(codec, "You are terse. Answer in one word.")
    built = _build(codec, [prompt])
    turn, _ = PROMPT.find_system_turn(codec.tokenizer)
    if turn is None:  # Mistral: no system turn to find; nothing is marked
        assert "retention_token_range_starts" not in built
        return
    n = _expected_system_tokens(codec, prompt, turn)
    assert 0 < n < int(built["input_lengths"][0, 0])
    assert built["retention_token_range_starts"].tolist() == [[0]]
    assert built["retention_token_range_ends"].tolist() == [[n]]
    assert built["retention_token_range_priorities"].tolist() == [[90]]


def test_default_and_empty_system_turns(family):
    name, codec = family
    built = _build(codec, [_chat(codec, None)])
    if name in ("qwen25", "smollm2"):  # the template writes its default system message: that is the system turn
        assert built["retention_token_range_ends"][0, 0] > 0
    else:  # Llama 3.1 writes an empty system message (date header only); Mistral has none
        assert "retention_token_range_starts" not in built


def test_plain_prompts_and_separate_system_prompts_still_work(family):
    _, codec = family
    assert "retention_token_range_starts" not in _build(codec, ["Just a plain prompt, no template."])
    built = _build(codec, ["Hi"], ["Be brief."])
    assert built["retention_token_range_ends"].tolist() == [[len(codec.encode_batch(["Be brief."])[0])]]


def test_a_mixed_batch_is_valid_for_the_executor(family):
    name, codec = family
    built = _build(codec, [_chat(codec, "Be brief."), "plain text", _chat(codec, "You are a very long system "
                                                                                "prompt about many things.")])
    if name == "mistral":
        assert "retention_token_range_starts" not in built
        return
    width = built["retention_token_range_starts"].shape[1]
    for r in range(3):
        TEXT.check_retention_ranges([tuple(int(built[n][r, k]) for n in PROMPT.RETENTION) for k in range(width)])


def test_the_real_smollm2_tokenizer(smollm2_model: Path):
    codec = TEXT.TextCodec(str(smollm2_model), add_special_tokens=False, skip_special_tokens=True)
    turn, note = PROMPT.find_system_turn(codec.tokenizer)
    assert turn is not None, note
    prompt = _chat(codec, "You are a geography tutor.")
    built = _build(codec, [prompt])
    n = _expected_system_tokens(codec, prompt, turn)
    assert built["retention_token_range_ends"].tolist() == [[n]]
    ids = built["input_ids"][0, :n].tolist()
    assert codec.tokenizer.decode(ids).endswith("<|im_end|>\n") and "geography" in codec.tokenizer.decode(ids)
