"""The room for code that runs inside the user's script process, not convlint's.

``tracer_boot.py`` (``convlint trace``: the converters instrumented), ``training_boot.py``
(``convlint train-check``: the script run with probes), the probes (``probe_keras.py``,
``probe_torch.py``) and the trace they write (``record.py``; the parent reads it back with
``record.read_trace``). The parent side, which starts these processes, limits and stops them, is
``analyzers/subproc.py``. Code here must never break the user's script: it imports frameworks
only when the script has, and swallows its own failures.
"""
