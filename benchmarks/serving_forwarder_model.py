"""The cheapest possible `tensorrt_llm_bls`, for benchmarks/serving_cpu.py --forwarder: a floor, not a model.

Copied over `models/tensorrt_llm_bls/1/model.py` of our repository. It does no text work at all: it
sends the engine a fixed prompt, and for every engine response sends the client one constant
one-character `text_output` (the last one final). What it costs is what any BLS that answers one
response per engine response pays on this Triton: two Python-stub crossings per token, the core
routing both, and the client reading it.
"""

from __future__ import annotations

import numpy as np
import triton_python_backend_utils as pb_utils

FINAL = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL


class TritonPythonModel:
    def initialize(self, args):
        self.text = np.array([b"x"], dtype=object)

    def execute(self, requests):
        for request in requests:
            sender = request.get_response_sender()
            inputs = {t.name(): t.as_numpy() for t in request.inputs()}
            stream = bool(inputs.get("stream", np.zeros(1, dtype=bool)).any())
            engine = [pb_utils.Tensor("input_ids", np.arange(1, 33, dtype=np.int32).reshape(1, -1)),
                      pb_utils.Tensor("input_lengths", np.array([[32]], dtype=np.int32)),
                      pb_utils.Tensor("request_output_len", inputs["max_tokens"].astype(np.int32)),
                      pb_utils.Tensor("streaming", np.array([[stream]], dtype=bool))]
            responses = pb_utils.InferenceRequest(model_name="tensorrt_llm", inputs=engine,
                                                  requested_output_names=["output_ids", "sequence_length"]
                                                  ).exec(decoupled=True)
            for _ in responses:
                sender.send(pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("text_output", self.text)]))
            sender.send(flags=FINAL)
        return None
