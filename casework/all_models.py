"""Every model module of the casework area, imported so the metadata is complete.

Migrations (migrations/env.py) and the test suite import this module; a new model module
is added to the import and to ``__all__``.
"""

from casework import casefile, duplicates, models, reference, supervision, timeline

__all__ = ["casefile", "duplicates", "models", "reference", "supervision", "timeline"]
