"""TEST DOUBLE (see tensorrt_llm/__init__.py): the executor bindings the LLM-API repository uses."""
