"""Folder that typetrace puts on ``PYTHONPATH`` so that child processes start tracing.

It holds only the ``sitecustomize`` module; see :mod:`typetrace._subprocess`.
"""
