"""A stand-in `tensorrt_llm` for benchmarks/serving_overhead.py: the C++ backend's contract, zero compute.

Copied over `models/tensorrt_llm/1/model.py` of a generated repository. Every request gets a fixed
number of tokens (the parameter `standin_tokens`, at most `request_output_len`) at once: one response
per token when streaming, one response with all of them otherwise. The tokens cycle through the
prompt's own ids, so detokenization does real work. What is measured is then the repository itself:
Triton, the ensemble scheduler, preprocessing, postprocessing or the BLS.
"""

from __future__ import annotations

import json

import numpy as np
import triton_python_backend_utils as pb_utils

FINAL = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL


def _scalar(request, name, default):
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    return default if tensor is None else tensor.as_numpy().reshape(-1)[0].item()


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        self.tokens = int(config["parameters"].get("standin_tokens", {}).get("string_value", "32"))
        self.decoupled = pb_utils.using_decoupled_model_transaction_policy(config)

    def _tensors(self, ids, prompt_len, total):
        return [pb_utils.Tensor("output_ids", np.array(ids, dtype=np.int32).reshape(1, 1, -1)),
                pb_utils.Tensor("sequence_length", np.array([[len(ids)]], dtype=np.int32)),
                pb_utils.Tensor("num_input_tokens", np.array([[prompt_len]], dtype=np.int32)),
                pb_utils.Tensor("num_output_tokens", np.array([[total]], dtype=np.int32))]

    def _tokens(self, request):
        prompt = pb_utils.get_input_tensor_by_name(request, "input_ids").as_numpy().reshape(-1)
        length = int(_scalar(request, "input_lengths", prompt.size))
        n = min(self.tokens, int(_scalar(request, "request_output_len", self.tokens)))
        source = prompt[:length].tolist() or [0]
        return [source[i % len(source)] for i in range(n)], length

    def execute(self, requests):
        if not self.decoupled:
            out = []
            for request in requests:
                ids, length = self._tokens(request)
                out.append(pb_utils.InferenceResponse(output_tensors=self._tensors(ids, length, len(ids))))
            return out
        for request in requests:
            sender = request.get_response_sender()
            ids, length = self._tokens(request)
            if bool(_scalar(request, "streaming", False)):
                for k, token in enumerate(ids):
                    sender.send(pb_utils.InferenceResponse(output_tensors=self._tensors([token], length, k + 1)),
                                flags=FINAL if k == len(ids) - 1 else 0)
            else:
                sender.send(pb_utils.InferenceResponse(output_tensors=self._tensors(ids, length, len(ids))),
                            flags=FINAL)
        return None
