"""usd subpackage."""
