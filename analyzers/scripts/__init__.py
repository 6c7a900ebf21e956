"""Conversion scripts: static analysis (no execution) and instrumented runs (``trace``).

``analyze_file`` is the entry point the CLI and the language server call for the static rules.
"""

from convlint.analyzers.scripts.check import analyze_file, analyze_source

__all__ = ["analyze_file", "analyze_source"]
