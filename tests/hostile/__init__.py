"""Hostile inputs: files and values a careless or malicious user could hand the pack (issue 16)."""
