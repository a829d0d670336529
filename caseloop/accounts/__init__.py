"""Accounts: organisations (tenants), memberships with roles, API keys and the permission helper."""
