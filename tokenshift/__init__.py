"""tokenshift: free language models from their tokenizer.

The packages install under this namespace: `tokenshift.bytelevel`,
`tokenshift.transplant`, `tokenshift.hypernet`, `tokenshift.models`.
Heavy libraries are imported lazily, so `import tokenshift` stays fast.
"""
__version__ = "0.1.0"
