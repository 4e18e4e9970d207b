"""The command line: `aethel-lsp` serves LSP, `aethel-lsp SUBCOMMAND` runs one of the table in
`main`; heavier subcommands have a module each (demo, doctor, check)."""
