"""The cheapest possible Python models of a repository, for benchmarks/serving_cpu.py --forwarder: floors, not models.

Copied over `models/{preprocessing,postprocessing,tensorrt_llm_bls}/1/model.py` of our repository; what
each does depends on the model's name. None does any text work:

- preprocessing: answers every request with the same 32 prompt ids, end id and pad id;
- postprocessing: answers every request with the same one-character `OUTPUT`;
- tensorrt_llm_bls: sends the engine the same prompt and, for every engine response, sends the client
  one constant one-character `text_output` (then the final flag).

What they cost is what any ensemble (three Python steps) or any BLS that answers one response per
engine response pays on this Triton: the Python-stub crossings, the core routing them, the client.
"""

from __future__ import annotations

import json

import numpy as np
import triton_python_backend_utils as pb_utils

FINAL = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL
IDS = np.arange(1, 33, dtype=np.int32).reshape(1, -1)


class TritonPythonModel:
    def initialize(self, args):
        self.role = json.loads(args["model_config"])["name"]
        self.text = np.array([b"x"], dtype=object)
        self.length = np.array([[IDS.shape[1]]], dtype=np.int32)
        self.end, self.pad = np.array([[2]], dtype=np.int32), np.array([[3]], dtype=np.int32)

    def execute(self, requests):
        if self.role == "preprocessing":
            return [pb_utils.InferenceResponse(output_tensors=[
                pb_utils.Tensor("INPUT_ID", IDS), pb_utils.Tensor("REQUEST_INPUT_LEN", self.length),
                pb_utils.Tensor("OUT_END_ID", self.end), pb_utils.Tensor("OUT_PAD_ID", self.pad)]) for _ in requests]
        if self.role == "postprocessing":
            return [pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("OUTPUT", self.text)]) for _ in requests]
        for request in requests:
            sender = request.get_response_sender()
            inputs = {t.name(): t.as_numpy() for t in request.inputs()}
            stream = bool(inputs.get("stream", np.zeros(1, dtype=bool)).any())
            engine = [pb_utils.Tensor("input_ids", IDS), pb_utils.Tensor("input_lengths", self.length),
                      pb_utils.Tensor("request_output_len", inputs["max_tokens"].astype(np.int32)),
                      pb_utils.Tensor("streaming", np.array([[stream]], dtype=bool))]
            responses = pb_utils.InferenceRequest(model_name="tensorrt_llm", inputs=engine,
                                                  requested_output_names=["output_ids", "sequence_length"]
                                                  ).exec(decoupled=True)
            for _ in responses:
                sender.send(pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("text_output", self.text)]))
            sender.send(flags=FINAL)
        return None
