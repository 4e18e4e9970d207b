"""`python -m aethel_lsp` behaves exactly like the `aethel-lsp` command."""

from aethel_lsp.cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())
