"""The reference's decoding and response rules, in process (reference_generate.py, no server).

The tiny model runs in float32 so a batched wave decodes exactly like single requests; SmolLM2 checks
the same on real text. Upstream places: backend_semantics.json ("responses").
"""

from __future__ import annotations

import numpy as np
import pytest

from .helpers import tensors


class Run:
    def __init__(self, modules, model, torch, **limits) -> None:
        self.rq, self.gen_mod = modules.requests, modules.generate
        vocab = int(model.get_output_embeddings().weight.shape[0])
        base = dict(decoupled=True, exclude_input_param=True, max_input_len=256, max_seq_len=512, max_beam_width=2,
                    vocab_size=vocab, gather_context_logits=True, gather_generation_logits=True)
        self.limits = self.rq.Limits(**{**base, **limits})
        self.gen = self.gen_mod.Generator(model, torch, logits_dtype=np.float32, tokens_per_block=32, vocab_size=vocab)

    def seqs(self, inputs):
        out = []
        for req in self.rq.make_requests(inputs, self.limits):
            assert self.rq.validate(req, self.limits).fetch_error is None
            out += [self.gen_mod.Seq(req, k, 1, 0) for k in range(req.sampling.sub_requests)]
        return out

    def __call__(self, *many):
        """Run the requests' sequences as ONE wave; responses per sequence: [(arrays, final), ...]."""
        groups = [self.seqs(inputs) for inputs in many]
        got: dict[int, list] = {id(s): [] for g in groups for s in g}
        self.gen.run([s for g in groups for s in g], lambda s, a, f: got[id(s)].append((a, f)), lambda s: None)
        return [[got[id(s)] for s in g] for g in groups]


@pytest.fixture(scope="module")
def tiny(reference_modules, ref_model):
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig

    torch.set_num_threads(1)  # 2 shared cores: more threads only contend
    model = AutoModelForCausalLM.from_pretrained(ref_model, dtype=torch.float32)
    model.eval()
    model.generation_config = GenerationConfig()
    return Run(reference_modules, model, torch)


def ids_of(responses):
    return [t for a, _ in responses for t in a["output_ids"][0, 0, : a["sequence_length"][0, 0]].tolist()]


PROMPT = [1, 44, 438, 83, 490]


def test_stream_never_carries_the_prompt_and_counts_each_response(tiny) -> None:
    """llmRequest.cpp:110-117 + model_instance_state.cc:1066-1075,1273-1282."""
    [[whole]] = tiny(tensors(PROMPT, 6, exclude_input_in_output=False, return_num_output_tokens=True))
    [[stream]] = tiny(tensors(PROMPT, 6, exclude_input_in_output=False, streaming=True, return_num_output_tokens=True))
    assert len(whole) == 1 and whole[0][1]
    generated = ids_of(whole)[len(PROMPT):]
    assert ids_of(whole)[: len(PROMPT)] == PROMPT and len(generated) == 6
    assert ids_of(stream) == generated  # no prompt, even with exclude_input_in_output false
    assert [f for _, f in stream] == [False] * 5 + [True]  # the length-limited final holds the last token
    assert [int(a["num_output_tokens"][0, 0]) for a, _ in stream] == [1] * 6
    assert int(whole[0][0]["num_output_tokens"][0, 0]) == len(PROMPT) + 6  # output_ids' count, prompt included


def test_the_end_id_ends_with_an_empty_final_response_and_is_never_output(tiny) -> None:
    """llmRequest.cpp:127 (a final response even without new tokens); createNewDecoderRequests endId."""
    [[free]] = tiny(tensors(PROMPT, 8, end_id=-1))
    free_ids = ids_of(free)
    end = free_ids[3]
    first = free_ids.index(end)
    [[stream]] = tiny(tensors(PROMPT, 8, end_id=end, streaming=True))
    assert ids_of(stream) == free_ids[:first]
    assert stream[-1][1] and stream[-1][0]["output_ids"].shape == (1, 1, 0)
    [[none]] = tiny(tensors(PROMPT, 8))  # no end_id: only the length stops it (value_or(-1))
    assert ids_of(none) == free_ids


def test_logits_and_log_probs_in_streamed_responses(tiny) -> None:
    """llmRequest.cpp:149-166: cumulative log probs; this response's generation logits; context logits each time."""
    [[stream]] = tiny(tensors(PROMPT, 4, streaming=True, return_log_probs=True, return_generation_logits=True,
                              return_context_logits=True))
    vocab = tiny.limits.vocab_size
    for k, (a, _) in enumerate(stream, start=1):
        assert a["output_log_probs"].shape == (1, 1, k)
        assert a["cum_log_probs"][0, 0] == pytest.approx(a["output_log_probs"].sum(), rel=1e-5)
        assert a["generation_logits"].shape == (1, 1, 1, vocab)
        assert a["context_logits"].shape == (1, len(PROMPT), vocab)
        logits = a["generation_logits"][0, 0, 0].astype(np.float64)
        log_softmax = logits - np.log(np.exp(logits - logits.max()).sum()) - logits.max()
        token = int(a["output_ids"][0, 0, 0])
        assert a["output_log_probs"][0, 0, -1] == pytest.approx(log_softmax[token], abs=1e-4)
        assert token == int(np.argmax(logits))


def test_non_streamed_generation_logits_are_the_whole_buffer(tiny) -> None:
    """llmRequest.cpp:172-177: [1, beams, request_output_len, vocab]; steps never run are zero here."""
    [[free]] = tiny(tensors(PROMPT, 8, end_id=-1))
    end = ids_of(free)[2]
    [[whole]] = tiny(tensors(PROMPT, 8, end_id=end, return_generation_logits=True))
    logits = whole[0][0]["generation_logits"]
    steps = ids_of(free).index(end) + 1  # the step that produced the end id ran too
    assert logits.shape == (1, 1, 8, tiny.limits.vocab_size)
    assert np.abs(logits[0, 0, :steps]).sum(axis=-1).min() > 0 and not logits[0, 0, steps:].any()


def test_children_sample_with_seed_plus_their_index(tiny) -> None:
    """llmRequest.cpp:328-339: child i of num_return_sequences uses seed + i."""
    [[a, b]] = tiny(tensors(PROMPT, 6, runtime_top_k=50, seed=5, num_return_sequences=2))
    [[c]] = tiny(tensors(PROMPT, 6, runtime_top_k=50, seed=6))
    assert ids_of(b) == ids_of(c) and ids_of(a) != ids_of(b)
    assert [int(r[0][0]["sequence_index"][0, 0]) for r in (a, b)] == [0, 1]


def test_stop_words_stay_in_the_output_and_min_tokens_bans_the_end_id(tiny) -> None:
    [[free]] = tiny(tensors(PROMPT, 8, end_id=-1))
    toks = ids_of(free)
    word = toks[2:4]
    stop = np.array([[word + [2, -1]]], dtype=np.int32)  # one 2-token word, offsets [2, -1]
    [[stopped]] = tiny(tensors(PROMPT, 8, stop_words_list=stop))
    assert ids_of(stopped) == toks[: toks.index(word[0], 2) + 2]
    [[ended]] = tiny(tensors(PROMPT, 8, end_id=toks[0]))
    [[held]] = tiny(tensors(PROMPT, 8, end_id=toks[0], min_tokens=3))
    assert ids_of(ended) == [] and len(ids_of(held)) >= 3 and toks[0] not in ids_of(held)[:3]


def test_a_batched_wave_decodes_like_one_request_at_a_time(tiny) -> None:
    prompts = [PROMPT, [1, 7, 9], [1, 300, 301, 302, 303, 304, 305, 306]]
    alone = [ids_of(tiny(tensors(p, 10))[0][0]) for p in prompts]
    together = tiny(*[tensors(p, 10) for p in prompts])
    assert [ids_of(g[0]) for g in together] == alone


@pytest.mark.slow
def test_batched_real_text_equals_transformers_generate(reference_modules, smollm2_model) -> None:
    """SmolLM2: rows of different lengths decoded in one wave give transformers' own greedy text."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    torch.set_num_threads(1)
    tok = AutoTokenizer.from_pretrained(smollm2_model)
    model = AutoModelForCausalLM.from_pretrained(smollm2_model, dtype=torch.float32)
    model.eval()
    model.generation_config = GenerationConfig()
    run = Run(reference_modules, model, torch)
    prompts = ["The capital of France is", "Water boils at", "One, two, three, four,"]
    rows = [tok(p)["input_ids"] for p in prompts]
    wave = run(tensors(rows, 8, lengths=[len(r) for r in rows]))[0]
    texts = [tok.decode(ids_of(seq)) for seq in wave]
    assert "Paris" in texts[0]
    for row, text in zip(rows, texts):
        with torch.inference_mode():
            out = model.generate(torch.tensor([row]), max_new_tokens=8, do_sample=False, pad_token_id=0)
        assert text == tok.decode(out[0, len(row):])
