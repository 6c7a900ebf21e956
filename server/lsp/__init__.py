"""The language server: ``server`` (handlers and routing), ``session`` (state), ``adapter``
(findings to LSP), ``commands`` (commands and code actions), ``jobs`` (the worker process),
``settings`` (editor settings and their precedence)."""
