"""sisgen subpackage."""
