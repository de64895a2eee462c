"""TEST DOUBLE generation: one worker thread runs the requests in turn with transformers on CPU (float32).

What a RequestOutput does follows the llmapi_semantics fixture: async-iterable per step when streaming (one
item otherwise), `outputs[0].token_ids` holds every token so far, the end id is not output, a stop token is
output only with include_stop_str_in_output, `abort()` finishes the request with finish_reason 'cancelled'.
"""

from __future__ import annotations

import asyncio
import math
import queue
import threading
from dataclasses import dataclass, field


@dataclass
class Logprob:
    logprob: float
    rank: int = 1


@dataclass
class CompletionOutput:
    index: int = 0
    text: str = ""
    token_ids: list = field(default_factory=list)
    logprobs: list = field(default_factory=list)
    cumulative_logprob: float | None = None
    finish_reason: str | None = None
    stop_reason: object = None


class RequestOutput:
    def __init__(self, request_id, prompt_token_ids, streaming, loop):
        self.request_id, self.prompt_token_ids, self.streaming = request_id, prompt_token_ids, streaming
        self.outputs = [CompletionOutput()]
        self.finished = False
        self.aborted = threading.Event()
        self._loop, self._queue = loop, asyncio.Queue()

    def abort(self):
        self.aborted.set()

    def _publish(self, tokens, logprobs, finish_reason=None):
        snapshot = RequestOutput.__new__(RequestOutput)
        snapshot.__dict__.update(request_id=self.request_id, prompt_token_ids=self.prompt_token_ids,
                                 finished=finish_reason is not None,
                                 outputs=[CompletionOutput(token_ids=list(tokens), logprobs=list(logprobs),
                                                           finish_reason=finish_reason,
                                                           cumulative_logprob=sum(lp[t].logprob for lp, t in
                                                                                  zip(logprobs, tokens)) if logprobs else None)])
        self._loop.call_soon_threadsafe(self._queue.put_nowait, snapshot)

    def __aiter__(self):
        return self

    async def __anext__(self):
        if self.finished:
            raise StopAsyncIteration
        item = await self._queue.get()
        self.outputs, self.finished = item.outputs, item.finished
        return item


class Engine:
    def __init__(self, model_dir, *, max_seq_len, max_num_tokens, chunked):
        import torch
        from transformers import AutoModelForCausalLM

        self.torch = torch
        self.model = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32, local_files_only=True)
        self.model.eval()
        self.max_seq_len, self.max_num_tokens, self.chunked = max_seq_len, max_num_tokens, chunked
        self.jobs: queue.Queue = queue.Queue()
        self.count = 0
        self.thread = threading.Thread(target=self._work, name="fake-trtllm-engine", daemon=True)
        self.thread.start()

    def submit(self, prompt, params, streaming) -> RequestOutput:
        if not self.chunked and self.max_num_tokens and len(prompt) > self.max_num_tokens:
            raise ValueError(f"The sum of prompt length ({float(len(prompt))}), query length (0) should not exceed "
                             f"max_num_tokens ({self.max_num_tokens})")
        self.count += 1
        out = RequestOutput(self.count, prompt, streaming, asyncio.get_running_loop())
        self.jobs.put((out, params))
        return out

    def stop(self):
        self.jobs.put(None)
        self.thread.join(timeout=10)

    def _work(self):
        while True:
            job = self.jobs.get()
            if job is None:
                return
            out, params = job
            try:
                self._generate(out, params)
            except Exception as exc:  # noqa: BLE001 - the double reports and keeps serving
                out._publish([], [], f"error: {type(exc).__name__}: {exc}")

    def _pick(self, logits, params, generated, prompt, generator):
        torch = self.torch
        logits = logits.clone()
        seen = prompt + generated
        if params.repetition_penalty and params.repetition_penalty != 1.0 and seen:
            idx = torch.tensor(sorted(set(seen)))
            vals = logits[idx]
            logits[idx] = torch.where(vals > 0, vals / params.repetition_penalty, vals * params.repetition_penalty)
        for token in set(seen):
            logits[token] -= (params.presence_penalty or 0.0) + (params.frequency_penalty or 0.0) * seen.count(token)
        if params.embedding_bias is not None:  # added to the logits (TensorRT-LLM's embedding bias)
            logits = logits + params.embedding_bias.to(logits.dtype)[: logits.shape[0]]
        for token in params.bad_token_ids or []:
            logits[token] = -math.inf
        if params.min_tokens and len(generated) < params.min_tokens:
            for token in [params.end_id, *(params.stop_token_ids or [])]:
                if token is not None and 0 <= token < logits.shape[0]:
                    logits[token] = -math.inf
        logprobs = torch.log_softmax(logits, dim=-1)
        greedy = (params.top_k in (None, 1)) and not params.top_p
        if greedy:
            token = int(torch.argmax(logits))
        else:
            scaled = logits / (params.temperature or 1.0)
            if params.top_k and params.top_k > 1:
                kth = torch.topk(scaled, params.top_k).values[-1]
                scaled[scaled < kth] = -math.inf
            token = int(torch.multinomial(torch.softmax(scaled, dim=-1), 1, generator=generator))
        return token, float(logprobs[token])

    def _generate(self, out, params):
        torch = self.torch
        prompt = list(out.prompt_token_ids)
        generator = torch.Generator().manual_seed(int(params.seed or 0))
        tokens, logprobs = [], []
        reason = None
        with torch.no_grad():
            result = self.model(torch.tensor([prompt]), use_cache=True)
            while reason is None:
                if out.aborted.is_set():
                    reason = "cancelled"
                    break
                token, lp = self._pick(result.logits[0, -1], params, tokens, prompt, generator)
                if token == params.end_id and not params.ignore_eos:
                    reason = "stop"
                    break
                tokens.append(token)
                if params.logprobs:
                    logprobs.append({token: Logprob(lp)})
                if token in (params.stop_token_ids or []):
                    reason = "stop"
                    if not params.include_stop_str_in_output:
                        tokens.pop()
                        logprobs = logprobs[:len(tokens)]
                elif len(tokens) >= params.max_tokens or (self.max_seq_len and len(prompt) + len(tokens) >= self.max_seq_len):
                    reason = "length"
                if reason is None:
                    if out.streaming:
                        out._publish(tokens, logprobs)
                    result = self.model(torch.tensor([[token]]), past_key_values=result.past_key_values, use_cache=True)
        out._publish(tokens, logprobs, reason)
