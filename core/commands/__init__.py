"""`tressel` subcommands, one module each (see tressel.cli)."""
