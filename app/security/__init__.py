"""Bearer tokens and scopes."""
