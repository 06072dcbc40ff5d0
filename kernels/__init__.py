"""2:4-sparse FP8 kernels and the numerics/format around them (import as `sparse24.kernels`).

Kept import-light on purpose: when the repository root is on sys.path, probes such as transformers'
`is_kernels_available()` may import this folder as a top-level `kernels`; that must cost nothing.
"""
