"""Helpers shared by the tests (and by the tools that make test data): imported as ``tests.support.*``.

Import them before anything boots ComfyUI: ComfyUI 0.8 ships its own top-level ``tests`` package.
"""
