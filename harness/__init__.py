"""The development harness that the tests, the tools and the benchmarks share: the headless ComfyUI host
(:mod:`.comfy_host`), the random-weight test-model builders (:mod:`.make_test_models`, :mod:`.dwpose_models`,
:mod:`.reference_weights`), synthetic training data, clip sampling helpers and the browser driver.

It imports production code only (never ``tools``, ``tests`` or ``benchmarks``: ``tests/test_layering.py``), so
each of those may import it without an import running both ways. Production code never imports it.
"""
