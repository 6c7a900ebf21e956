"""Repairs: each writes a new file (never over an input) and is verified by a re-check."""
