"""The model being compiled: its dimensions (``config``: ModelDims, parameter and KV arithmetic, read from
the HF ``config.json``) and its architecture (``architectures``: ArchSpec, what each stage supports)."""
