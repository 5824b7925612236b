"""nn subpackage."""
