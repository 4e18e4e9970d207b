"""Setup diagnosis, LSP-free: `checks` runs every check against an engine and the resolved
config; `report` is what it found; `settings_origin` says where each setting came from. The
CLI (`aethel-lsp doctor`) and the server (`aethel.doctor`) render the same report."""
