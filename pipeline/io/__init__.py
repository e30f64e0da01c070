"""Readers and writers for signal files."""
