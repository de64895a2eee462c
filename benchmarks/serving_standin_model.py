"""A stand-in `tensorrt_llm` for the serving benchmarks and ordering tests: the C++ backend's contract, zero compute.

Copied over `models/tensorrt_llm/1/model.py` of a repository (ours or NVIDIA's filled templates).
Every row of a request gets a fixed number of tokens (the parameter `standin_tokens`, at most
`request_output_len`) at once: one response per token when streaming, one response with all of them
otherwise; the last response of the request carries the final flag, as the C++ backend's does. The
tokens cycle through the prompt's own ids, so detokenization does real work. Outputs follow the C++
backend (TensorRT-LLM triton_backend `model_instance_state.cc`, `fillTritonResponse`): `output_ids`
[1, 1, n] and `sequence_length` [1, 1] always; `num_input_tokens` / `num_output_tokens` (the tokens
in that response) only when asked for with `return_num_*_tokens`; `batch_index` [1, 1] when a request
has more than one row. What is measured is then the repository itself: Triton, the ensemble
scheduler, preprocessing, postprocessing or the BLS.
"""

from __future__ import annotations

import json

import numpy as np
import triton_python_backend_utils as pb_utils

FINAL = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        self.tokens = int(config["parameters"].get("standin_tokens", {}).get("string_value", "32"))
        self.decoupled = pb_utils.using_decoupled_model_transaction_policy(config)

    def _rows(self, request):
        inputs = {t.name(): t.as_numpy() for t in request.inputs()}

        def flag(name):
            value = inputs.get(name)
            return bool(value is not None and value.reshape(-1)[0])
        prompt = inputs["input_ids"]
        rows = prompt.shape[0]
        prompt = prompt.reshape(rows, -1)
        lengths = inputs.get("input_lengths", np.full((rows, 1), prompt.shape[1])).reshape(rows, -1)[:, 0]
        limits = inputs.get("request_output_len", np.full((rows, 1), self.tokens)).reshape(rows, -1)[:, 0]
        out = []
        for r in range(rows):
            source = prompt[r, : int(lengths[r])].tolist() or [0]
            n = min(self.tokens, int(limits[r]))
            out.append(([source[i % len(source)] for i in range(n)], int(lengths[r])))
        return out, flag("streaming"), flag("return_num_input_tokens"), flag("return_num_output_tokens")

    @staticmethod
    def _tensors(ids, prompt_len, row, rows, num_in, num_out):
        tensors = [pb_utils.Tensor("output_ids", np.array(ids, dtype=np.int32).reshape(1, 1, -1)),
                   pb_utils.Tensor("sequence_length", np.array([[len(ids)]], dtype=np.int32))]
        if num_in:
            tensors.append(pb_utils.Tensor("num_input_tokens", np.array([[prompt_len]], dtype=np.int32)))
        if num_out:
            tensors.append(pb_utils.Tensor("num_output_tokens", np.array([[len(ids)]], dtype=np.int32)))
        if rows > 1:
            tensors.append(pb_utils.Tensor("batch_index", np.array([[row]], dtype=np.int32)))
        return tensors

    def execute(self, requests):
        if not self.decoupled:
            out = []
            for request in requests:
                rows, _, num_in, num_out = self._rows(request)
                ids, length = rows[0]
                out.append(pb_utils.InferenceResponse(output_tensors=self._tensors(ids, length, 0, 1, num_in, num_out)))
            return out
        for request in requests:
            sender = request.get_response_sender()
            rows, streaming, num_in, num_out = self._rows(request)
            for r, (ids, length) in enumerate(rows):
                last_row = r == len(rows) - 1
                chunks = [[t] for t in ids] if (streaming and ids) else [ids]
                for k, chunk in enumerate(chunks):
                    final = last_row and k == len(chunks) - 1
                    sender.send(pb_utils.InferenceResponse(
                        output_tensors=self._tensors(chunk, length, r, len(rows), num_in, num_out)),
                        flags=FINAL if final else 0)
        return None
