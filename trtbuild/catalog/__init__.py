"""Static catalogs: GPUs and model architectures."""
