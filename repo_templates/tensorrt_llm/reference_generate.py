"""Token generation for the CPU reference, with the executor's output rules (no Triton imports).

`Generator.run` takes a wave of sequences and decodes them together: one left-padded prefill, then one
token per step for every active sequence, the KV cache kept across steps (finished rows are dropped from
it). Beam search goes through transformers' `generate`, one request at a time. Each response's content
follows `LlmRequest::createResult` (llmRequest.cpp:69-236) and `fillTritonResponse`
(model_instance_state.cc:1048-1356); see backend_semantics.json for the rules and their line numbers.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np


class Seq:
    """One generated sequence: an executor request, or one of its `num_return_sequences` children."""

    def __init__(self, req: Any, index: int, request_id: int, arrival_ns: int) -> None:
        self.req, self.index, self.request_id = req, index, request_id
        # llmRequest.cpp:328-339: child i samples with seed + i
        self.seed = (req.sampling.seed + index) % (1 << 64)
        self.tokens: list[int] = []          # generated tokens (beam width 1)
        self.beams: list[list[int]] = []     # beam search: the returned beams
        self.sent = 0                        # tokens already streamed
        self.log_probs: list[list[float]] = [[]]
        self.gen_logits: list[np.ndarray] = []
        self.beam_logits: list[list[np.ndarray]] = []
        self.context_logits: np.ndarray | None = None
        self.done, self.cancelled = False, False
        self.times = {"arrival": arrival_ns, "scheduled": 0, "first": 0, "last": 0}
        self.owner: Any = None               # the Triton request's bookkeeping (model.py)
        self.counts: Any = None              # token counts for the penalties (torch, lazily)
        self.generator: Any = None
        self.top_p: float | None = None      # the decayed top_p (runtime_top_p_decay)

    @property
    def prompt(self) -> list[int]:
        return self.req.input_ids


Emit = Callable[[Seq, dict, bool], None]


class Generator:
    def __init__(self, model: Any, torch: Any, *, logits_dtype: Any, tokens_per_block: int, vocab_size: int,
                 cancel_check_ms: int = 100) -> None:
        self.model, self.torch = model, torch
        self.cancel_check_ns = max(1, cancel_check_ms) * 1_000_000
        self.logits_dtype, self.tokens_per_block, self.vocab = logits_dtype, tokens_per_block, vocab_size
        self.keep_arg = True  # models that take logits_to_keep compute one row of logits per step

    # ----------------------------------------------------------------------------------- responses
    def arrays(self, s: Seq, beams: list[list[int]], final: bool) -> dict[str, np.ndarray]:
        """The output tensors of one response (model_instance_state.cc:1066-1337)."""
        req = s.req
        width = max([len(b) for b in beams] or [0])
        ids = np.full((1, len(beams), width), -1, dtype=np.int32)  # :1077-1091, shorter beams padded with -1
        for b, toks in enumerate(beams):
            ids[0, b, : len(toks)] = toks
        out = {"output_ids": ids,
               "sequence_length": np.array([[len(b) for b in beams]], dtype=np.int32)}  # :1098-1104
        if req.return_context_logits and s.context_logits is not None:  # :1112-1136, every response
            out["context_logits"] = s.context_logits[None].astype(self.logits_dtype)
        if req.return_generation_logits:
            out["generation_logits"] = self._generation_logits(s, beams)
        if req.return_log_probs:  # :1190-1215; the log probs of ALL generated tokens so far
            n = max(len(lp) for lp in s.log_probs)
            lps = np.full((1, len(s.log_probs), n), -1.0, dtype=np.float32)
            for b, lp in enumerate(s.log_probs):
                lps[0, b, : len(lp)] = lp
            out["output_log_probs"] = lps
            out["cum_log_probs"] = np.array([[sum(lp) for lp in s.log_probs]], dtype=np.float32)
        if req.rows > 1:  # :1217-1225: only for Triton requests of several rows
            out["batch_index"] = np.array([[req.row]], dtype=np.int32)
        if (req.sampling.num_return_sequences or 1) > 1:  # :1227-1236
            out["sequence_index"] = np.array([[s.index]], dtype=np.int32)
        if req.return_num_input_tokens:  # :1262-1271
            out["num_input_tokens"] = np.array([[len(s.prompt)]], dtype=np.int32)
        if req.return_num_output_tokens:  # :1273-1282: this response's tokens, all beams, prompt included
            out["num_output_tokens"] = np.array([[sum(len(b) for b in beams)]], dtype=np.int32)
        if req.write_perf_metrics:  # :1284-1337
            out.update(self._perf(s))
        return out

    def _generation_logits(self, s: Seq, beams: list[list[int]]) -> np.ndarray:
        vocab = self.vocab
        if s.req.streaming:  # llmRequest.cpp:160-166: this response's steps, [1, steps, beams, vocab]
            rows = s.gen_logits[s.sent - len(beams[0]): s.sent] if beams and beams[0] else []
            data = np.stack(rows)[:, None, :] if rows else np.zeros((0, 1, vocab), dtype=np.float32)
            return data[None].astype(self.logits_dtype)
        # :172-176: the whole [beams, max_new, vocab] buffer; steps never run stay zero here
        data = np.zeros((1, len(beams), s.req.max_new, vocab), dtype=np.float32)
        for b in range(len(beams)):
            rows = s.beam_logits[b] if s.beams else s.gen_logits
            if len(rows):
                data[0, b, : len(rows)] = np.stack(rows)[: s.req.max_new]
        return data.astype(self.logits_dtype)

    def _perf(self, s: Seq) -> dict[str, np.ndarray]:
        """RequestPerfMetrics: steady-clock nanoseconds (executor.h TimePoint), KV blocks, no drafts."""
        total = len(s.prompt) + max([len(s.tokens)] + [len(b) for b in s.beams])
        blocks = math.ceil(total / self.tokens_per_block) * max(1, s.req.sampling.beam_width)
        i32, i64 = np.int32, np.int64
        return {"kv_cache_alloc_new_blocks": np.array([[blocks]], i32), "kv_cache_reused_blocks": np.zeros((1, 1), i32),
                "kv_cache_alloc_total_blocks": np.array([[blocks]], i32),
                "arrival_time_ns": np.array([[s.times["arrival"]]], i64),
                "first_scheduled_time_ns": np.array([[s.times["scheduled"]]], i64),
                "first_token_time_ns": np.array([[s.times["first"]]], i64),
                "last_token_time_ns": np.array([[s.times["last"]]], i64),
                "acceptance_rate": np.zeros((1, 1), np.float32),
                "total_accepted_draft_tokens": np.zeros((1, 1), i32), "total_draft_tokens": np.zeros((1, 1), i32)}

    def _final_tokens(self, s: Seq) -> list[int]:
        """llmRequest.cpp:108-133: streaming sends what was not sent yet; otherwise prompt (unless
        excluded) + everything generated."""
        if s.req.streaming:
            return s.tokens[s.sent:]
        return ([] if s.req.exclude_input else list(s.prompt)) + s.tokens

    # -------------------------------------------------------------------------------------- waves
    def run(self, seqs: list[Seq], emit: Emit, poll_cancel: Callable[[list[Seq]], None]) -> None:
        for s in [s for s in seqs if s.req.sampling.beam_width > 1]:
            self._beam_search(s, emit)
        greedy = [s for s in seqs if s.req.sampling.beam_width == 1]
        if greedy:
            with self.torch.inference_mode():
                self._loop(greedy, emit, poll_cancel)

    def _forward(self, **kw: Any) -> Any:
        if self.keep_arg:
            try:
                return self.model(**kw, use_cache=True)
            except TypeError:
                self.keep_arg = False
        kw.pop("logits_to_keep", None)
        return self.model(**kw, use_cache=True)

    def _loop(self, seqs: list[Seq], emit: Emit, poll_cancel: Callable[[list[Seq]], None]) -> None:
        torch = self.torch
        from transformers import DynamicCache

        width = max(len(s.prompt) for s in seqs)
        ids = torch.zeros((len(seqs), width), dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, width - len(s.prompt):] = torch.tensor(s.prompt, dtype=torch.long)
            mask[i, width - len(s.prompt):] = 1
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        now = time.monotonic_ns()
        for s in seqs:
            s.times["scheduled"] = now
        cache = DynamicCache()
        want_context = any(s.req.return_context_logits for s in seqs)
        out = self._forward(input_ids=ids, attention_mask=mask, position_ids=pos, past_key_values=cache,
                            logits_to_keep=0 if want_context else 1)
        for i, s in enumerate(seqs):
            if s.req.return_context_logits:  # the prefill's logits: no second pass
                s.context_logits = out.logits[i, width - len(s.prompt):].float().numpy()
        last, next_pos = out.logits[:, -1, :], pos[:, -1] + 1
        active, checked = list(seqs), time.monotonic_ns()
        while True:
            if time.monotonic_ns() - checked >= self.cancel_check_ns:  # cancellation_check_period_ms
                poll_cancel(active)
                checked = time.monotonic_ns()
            plain = torch.argmax(last, dim=-1).tolist()
            chosen, keep = [], []
            for i, s in enumerate(active):
                tok = None if s.cancelled else self._choose(s, last[i], plain[i])
                self._after_step(s, tok, emit)
                if not s.done:
                    chosen.append(tok)
                    keep.append(i)
            if not keep:
                return
            if len(keep) < len(active):
                index = torch.tensor(keep, dtype=torch.long)
                cache.batch_select_indices(index)
                mask, next_pos = mask[index], next_pos[index]
                active = [active[i] for i in keep]
            mask = torch.cat([mask, torch.ones((len(active), 1), dtype=torch.long)], dim=1)
            out = self._forward(input_ids=torch.tensor(chosen, dtype=torch.long)[:, None], attention_mask=mask,
                                position_ids=next_pos[:, None], past_key_values=cache, logits_to_keep=1)
            last, next_pos = out.logits[:, -1, :], next_pos + 1

    def _after_step(self, s: Seq, tok: int | None, emit: Emit) -> None:
        """Record the step's outcome and send what the executor would send for it."""
        req, now = s.req, time.monotonic_ns()
        if not s.cancelled:
            s.times["first"] = s.times["first"] or now
            s.times["last"] = now
        if tok is None:  # cancelled, or the end id: the end token is never part of the output
            s.done = True
        else:
            s.tokens.append(tok)
            if s.counts is not None:
                s.counts[tok] += 1
            s.done = len(s.tokens) >= req.max_new or self._stopped(s)
        if s.done:
            tokens = self._final_tokens(s)
            s.sent = len(s.tokens)
            emit(s, self.arrays(s, [tokens], True), True)
        elif req.streaming:  # llmRequest.cpp:124-127: a response whenever new tokens exist
            s.sent = len(s.tokens)
            emit(s, self.arrays(s, [s.tokens[-1:]], False), False)

    @staticmethod
    def _stopped(s: Seq) -> bool:
        """A stop word ends the sequence; its tokens stay in the output."""
        for word in s.req.stop_words:
            n = len(word)
            if n and (s.tokens[-n:] if n <= len(s.tokens) else (s.prompt + s.tokens)[-n:]) == word:
                return True
        return False

    # ---------------------------------------------------------------------------------- sampling
    def _choose(self, s: Seq, row: Any, plain: int) -> int | None:
        """One step of one sequence: penalties, bans, sampling. Returns None for the end id."""
        torch, req, sp = self.torch, s.req, s.req.sampling
        end = req.end_id if req.end_id is not None and req.end_id >= 0 else None  # absent/-1: no end id
        temp = sp.temperature
        greedy = temp == 0 or sp.top_k == 1 or (not sp.top_k and sp.top_p is None)
        simple = (greedy and not req.return_log_probs and not req.return_generation_logits
                  and not req.bad_words and req.embedding_bias is None
                  and not (sp.min_tokens and end is not None and len(s.tokens) < sp.min_tokens)
                  and _neutral(sp))
        if simple:
            tok = plain
        else:
            x = row.float()
            if req.return_generation_logits:
                s.gen_logits.append(x.numpy().copy())
            x = self._process(s, x, end)
            tok = int(torch.argmax(x)) if greedy else self._sample(s, x)
            if req.return_log_probs and tok != end:
                s.log_probs[0].append(float(torch.log_softmax(x, dim=-1)[tok]))
        return None if tok == end else tok

    def _process(self, s: Seq, x: Any, end: int | None) -> Any:
        torch, req, sp = self.torch, s.req, s.req.sampling
        if sp.temperature and sp.temperature != 1.0:
            x = x / sp.temperature
        if not _neutral(sp):
            if s.counts is None:
                s.counts = torch.bincount(torch.tensor(s.prompt + s.tokens, dtype=torch.long),
                                          minlength=x.shape[-1])[: x.shape[-1]]
            seen = s.counts > 0
            if sp.repetition_penalty not in (None, 1.0):
                rp = sp.repetition_penalty
                x = torch.where(seen, torch.where(x > 0, x / rp, x * rp), x)
            counts = s.counts.to(x.dtype)
            x = x - (sp.frequency_penalty or 0.0) * counts - (sp.presence_penalty or 0.0) * seen.to(x.dtype)
        if req.embedding_bias is not None:
            x = x + torch.from_numpy(req.embedding_bias)
        seq = s.prompt + s.tokens
        for word in req.bad_words:
            if word and (len(word) == 1 or seq[-(len(word) - 1):] == word[:-1]):
                x[word[-1]] = -math.inf
        if end is not None and sp.min_tokens and len(s.tokens) < sp.min_tokens:
            x[end] = -math.inf
        return x

    def _sample(self, s: Seq, x: Any) -> int:
        torch, sp = self.torch, s.req.sampling
        if s.generator is None:
            s.generator = torch.Generator().manual_seed(s.seed)
        if sp.top_k and sp.top_k > 1:
            values, _ = torch.topk(x, min(sp.top_k, x.shape[-1]))
            x = torch.where(x < values[-1], torch.full_like(x, -math.inf), x)
        top_p = sp.top_p if s.top_p is None else s.top_p
        if top_p is not None and top_p < 1.0:
            probs, order = torch.sort(torch.softmax(x, dim=-1), descending=True)
            drop = (probs.cumsum(-1) - probs) >= top_p
            x = x.clone()
            x[order[drop]] = -math.inf
        tok = int(torch.multinomial(torch.softmax(x, dim=-1), 1, generator=s.generator))
        if top_p is not None and sp.top_p_decay is not None:  # runtime_top_p_decay / _min / _reset_ids
            floor = 1e-6 if sp.top_p_min is None else sp.top_p_min
            s.top_p = sp.top_p if tok == sp.top_p_reset_ids else max(top_p * sp.top_p_decay, floor)
        return tok

    # ------------------------------------------------------------------------------- beam search
    def _beam_search(self, s: Seq, emit: Emit) -> None:
        """transformers' beam search; one final response holding every beam (streaming included:
        returnAllGeneratedTokens is forced for beams, so the last streamed response holds it all)."""
        torch, req, sp = self.torch, s.req, s.req.sampling
        from transformers import GenerationConfig

        end = req.end_id if req.end_id is not None and req.end_id >= 0 else None
        s.times["scheduled"] = time.monotonic_ns()
        gen = GenerationConfig(
            max_new_tokens=req.max_new, num_beams=sp.beam_width, num_return_sequences=sp.return_beams,
            do_sample=False, eos_token_id=end, pad_token_id=end if end is not None else 0, bos_token_id=None,
            length_penalty=1.0 if sp.length_penalty is None else sp.length_penalty,
            early_stopping=bool(sp.early_stopping) if sp.early_stopping is not None else False,
            min_new_tokens=sp.min_tokens or 0, repetition_penalty=sp.repetition_penalty or 1.0,
            bad_words_ids=[w for w in req.bad_words if w] or None,
            output_scores=True, output_logits=req.return_generation_logits, return_dict_in_generate=True)
        prompt = torch.tensor([s.prompt], dtype=torch.long)
        with torch.inference_mode():
            out = self.model.generate(prompt, attention_mask=torch.ones_like(prompt), generation_config=gen)
            if req.return_context_logits:
                s.context_logits = self.model(prompt).logits[0].float().numpy()
            scores = self.model.compute_transition_scores(out.sequences, out.scores, out.beam_indices,
                                                          normalize_logits=False)
        now = time.monotonic_ns()
        s.times.update(first=now, last=now)
        s.beams, s.log_probs, s.beam_logits = [], [], []
        for b, seq in enumerate(out.sequences[:, len(s.prompt):].tolist()):
            cut = seq.index(end) if end is not None and end in seq else len(seq)
            s.beams.append(seq[:cut])
            s.log_probs.append([float(v) for v in scores[b, :cut]])
            if req.return_generation_logits:
                steps = [int(i) for i in out.beam_indices[b, :cut] if i >= 0]
                s.beam_logits.append([out.logits[t][i].float().numpy() for t, i in enumerate(steps)])
        s.tokens = list(s.beams[0])
        s.done = True
        prefix = [] if (req.exclude_input or req.streaming) else list(s.prompt)
        emit(s, self.arrays(s, [prefix + b for b in s.beams], True), True)


def _neutral(sp: Any) -> bool:
    return (sp.repetition_penalty in (None, 1.0) and not sp.presence_penalty and not sp.frequency_penalty)
