"""One module per command; see series/cli.py for the contract."""
