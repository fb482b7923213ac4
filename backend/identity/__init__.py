"""Operators' identities: bearer tokens (only their hashes stored), roles and tenant scopes."""
