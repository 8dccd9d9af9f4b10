"""Plumbing shared by the layers above `bytelevel`: special tokens by role, a model's embedding matrices.

Why a package of its own: `transplant`, `hypernet` and `models` each need these,
and none of them may import a sibling or the CLI. `common` imports only
`bytelevel` (and third-party libraries, lazily), so every layer above may use it.
"""
