"""convlint: a linter for deep-learning model conversions and training.

Importing this package is cheap: it never imports TensorFlow, torch or TVM. The engine lives in
``convlint.analyzers`` and the CLI and language server in ``convlint.server``.
"""

__version__ = "0.1.0"
