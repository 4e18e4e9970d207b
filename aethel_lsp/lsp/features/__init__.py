"""LSP features: one module per capability, each with `register(server)`.

Features never import one another; shared state lives in `aethel_lsp.lsp.session`.
"""
