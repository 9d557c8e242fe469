"""Every model module of the casework area, imported so the metadata is complete.

``reports.all_models`` imports this module with the rest of Haven's models; a new model
module of the casework area is added to the import and to ``__all__``.
"""

from casework import casefile, duplicates, models, reference, supervision, timeline

__all__ = [
    "casefile",
    "duplicates",
    "models",
    "reference",
    "supervision",
    "timeline",
]
