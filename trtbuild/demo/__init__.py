"""Offline demo assets: a tiny deterministic HF model and the built-in text corpus."""
