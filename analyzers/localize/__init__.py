"""Staged fault localization over recorded results: alignment, then the four stages.

Nothing here imports a runner or a framework: it reads layer tables (``LayerInfo``) and
recorded intermediates (numpy arrays).
"""
