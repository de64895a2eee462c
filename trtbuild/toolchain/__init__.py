"""The one narrow interface to TensorRT-LLM: detection, the ``trtllm-build`` flag set, executors.

* :mod:`trtbuild.toolchain.detect`     which TensorRT-LLM / TensorRT / GPU are present (never imported here)
* :mod:`trtbuild.toolchain.trtllm_cli` the ``trtllm-build`` 1.2 command line, as an argparse parser
* :mod:`trtbuild.toolchain.semantics`  what ``trtllm-build`` 1.2 records (and silently changes) in an engine
* :mod:`trtbuild.toolchain.process`    child processes: streamed log, timeout, failure report
* :mod:`trtbuild.toolchain.executors`  run a build locally or in NVIDIA's container
* :mod:`trtbuild.toolchain.fake`       a fake ``trtllm-build`` for tests and demos (labelled fake)

Nothing in this package imports tensorrt or tensorrt_llm.
"""
