"""trtbuild: compile one declarative recipe into TensorRT-LLM engines and a Triton model repository."""

__version__ = "0.1.0"
