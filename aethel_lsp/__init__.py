"""aethel-lsp: a language server that brings a local LLM into every editor."""

__version__ = "0.1.0"
