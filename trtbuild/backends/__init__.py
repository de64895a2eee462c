"""Serving backends beside the TensorRT-LLM engine (one package each)."""
