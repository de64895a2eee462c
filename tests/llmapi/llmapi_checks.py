"""Client-contract checks of a served LLM-API repository, shared by the double (test_llmapi_served.py) and
the real TensorRT-LLM (test_llmapi_gpu.py). Each takes a started TritonServer; none depends on the weights'
values beyond greedy decoding being deterministic."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from vllm_helpers import ask, count, joined, responses

MODELS = ("ensemble", "tensorrt_llm_bls")
PROMPTS = ("Hello world", "héllo wörld ✓ 日本語 🙂", "a b c d e f g")


def streamed_chunks_are_utf8_and_join_to_the_unary_text(server: Any) -> None:
    for model in MODELS:
        for prompt in PROMPTS:
            unary, error = responses(server, model, prompt, 24, stream=False, return_num_input_tokens=True,
                                     return_num_output_tokens=True)
            assert error is None and len(unary) == 1, error
            streamed, error = responses(server, model, prompt, 24, stream=True, return_num_input_tokens=True,
                                        return_num_output_tokens=True)
            assert error is None and len(streamed) > 2, error
            for item in streamed:
                assert item["text_output"].shape == (1,)
                bytes(item["text_output"][0]).decode("utf-8")
            assert joined(streamed) == joined(unary)
            assert count(streamed) == count(unary) > 0
            assert len({int(i["num_input_tokens"][0, 0]) for i in streamed + unary}) == 1


def max_tokens_is_honoured_and_checked(server: Any) -> None:
    out, error = responses(server, "ensemble", "a b c d e f g", 5, return_num_output_tokens=True)
    assert error is None and count(out) <= 5
    _, error = responses(server, "ensemble", "Hello world", 400)
    assert error is not None and "max_seq_len 320" in error


def prompt_echo_only_without_streaming(server: Any) -> None:
    plain = ask(server, "Hello world", 12).text
    echoed, _ = responses(server, "ensemble", "Hello world", 12, exclude_input_in_output=False,
                          return_num_output_tokens=True, return_num_input_tokens=True)
    assert joined(echoed).decode() == "Hello world" + plain
    plain_count = ask(server, "Hello world", 12, return_num_output_tokens=True).num_output_tokens
    assert count(echoed) == count(echoed, "num_input_tokens") + plain_count > plain_count
    streamed, _ = responses(server, "ensemble", "Hello world", 12, stream=True, exclude_input_in_output=False)
    assert joined(streamed).decode() == plain


def refusals_name_the_input(server: Any) -> None:
    for name, value, words in (("beam_width", 2, "beam_width"), ("num_return_sequences", 2, "num_return_sequences"),
                               ("return_context_logits", True, "logits"), ("return_perf_metrics", True, "perf"),
                               ("lora_task_id", 3, "lora_task_id"), ("guided_decoding_guide_type", "json", "guided")):
        _, error = responses(server, "ensemble", "Hello world", 4, **{name: value})
        assert error is not None and words in error and "LLM-API backend" in error, (name, error)
    _, error = responses(server, "ensemble", "Hello world", 4, beam_width=1, num_return_sequences=1,
                         return_context_logits=False, return_perf_metrics=False)
    assert error is None, error


def _tokenizer(server: Any) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(server.repo / "tokenizer", local_files_only=True)


def _first_tokens(server: Any, prompt: str) -> list[str]:
    """The streamed chunks of a greedy run; "" where a chunk is not one token that re-tokenizes to one token."""
    tokenizer = _tokenizer(server)
    out, _ = responses(server, "ensemble", prompt, 30, stream=True, return_num_output_tokens=True)
    chunks = []
    for item in out[:-1]:
        text = bytes(item["text_output"][0]).decode()
        one = count([item]) == 1 and len(tokenizer(text, add_special_tokens=False).input_ids) == 1
        chunks.append(text if one else "")
    return chunks


def stop_words_end_after_the_word(server: Any) -> None:
    full = ask(server, "a b c d e f g", 30).text
    chunks = _first_tokens(server, "a b c d e f g")
    tokenizer = _tokenizer(server)
    pick = [c for c in chunks[2:] if c][:1] + \
        [chunks[i - 1] + chunks[i] for i in range(3, len(chunks)) if chunks[i] and chunks[i - 1]
         and len(tokenizer(chunks[i - 1] + chunks[i], add_special_tokens=False).input_ids) == 2][:1]
    assert len(pick) == 2          # one single-token stop word (stop_token_ids), one of two tokens (matched)
    for word in pick:
        stopped = ask(server, "a b c d e f g", 30, stop_words=[word])
        assert stopped.error is None, stopped.error
        assert stopped.text == full[: full.index(word) + len(word)], (word, stopped.text, full)


def end_id_stops_before_the_token(server: Any) -> None:
    out, _ = responses(server, "ensemble", "a b c d e f g", 30, stream=True, return_num_output_tokens=True)
    texts = [bytes(i["text_output"][0]).decode() for i in out]
    chunks = _first_tokens(server, "a b c d e f g")
    k = next(i for i, c in enumerate(chunks) if c and i >= 2 and c not in "".join(texts[:i]))
    end_id = _tokenizer(server)(chunks[k], add_special_tokens=False).input_ids[0]
    ended = ask(server, "a b c d e f g", 30, end_id=end_id, return_num_output_tokens=True)
    assert ended.error is None and ended.text == "".join(texts[:k])   # the end token is not output
    assert ended.num_output_tokens == count(out[:k])


def bad_words_of_one_token_are_banned_longer_ones_refused(server: Any) -> None:
    chunks = _first_tokens(server, "Hello world")
    first = next(i for i, c in enumerate(chunks) if c)
    out, error = responses(server, "ensemble", "Hello world", 30, stream=True, bad_words=[chunks[first]])
    assert error is None, error
    assert bytes(out[first]["text_output"][0]).decode() != chunks[first]
    _, error = responses(server, "ensemble", "Hello world", 8, bad_words=["a much longer phrase here"])
    assert error is not None and "single tokens" in error


def concurrent_requests_each_get_their_own_answer(server: Any) -> None:
    prompts = [f"{p} {i}" for i in range(2) for p in PROMPTS]
    alone = {p: ask(server, p, 16).text for p in prompts}

    def one(args: tuple[int, str]) -> tuple[str, str]:
        i, prompt = args
        out, error = responses(server, MODELS[i % 2], prompt, 16, stream=bool(i % 2))
        assert error is None, error
        return prompt, joined(out).decode()

    with ThreadPoolExecutor(max_workers=len(prompts)) as pool:
        assert dict(pool.map(one, enumerate(prompts))) == alone


def cancelled_stream_is_aborted(server: Any) -> None:
    before = server.log_path.read_text(errors="replace").count("cancelled by the client")
    out, error = responses(server, "tensorrt_llm_bls", "a b c d e f g", 300, stream=True, cancel_after=3)
    assert error is None and len(out) == 3
    deadline = time.monotonic() + 30
    log = ""
    while time.monotonic() < deadline:
        log = server.log_path.read_text(errors="replace")
        if log.count("cancelled by the client") > before:
            break
        time.sleep(0.2)
    line = [ln for ln in log.splitlines() if "cancelled by the client" in ln][-1]
    assert int(line.split("after ")[1].split(" of ")[0]) < 300, line
    assert ask(server, "Hello world", 4).error is None


CHECKS: dict[str, Callable[[Any], None]] = {f.__name__: f for f in (
    streamed_chunks_are_utf8_and_join_to_the_unary_text, max_tokens_is_honoured_and_checked,
    prompt_echo_only_without_streaming, refusals_name_the_input, stop_words_end_after_the_word,
    end_id_stops_before_the_token, bad_words_of_one_token_are_banned_longer_ones_refused,
    concurrent_requests_each_get_their_own_answer, cancelled_stream_is_aborted)}
