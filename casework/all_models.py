"""Every model module of the casework area, imported so the metadata is complete.

``reports.all_models`` imports this module with the rest of Haven's models; a new model
module of the casework area is added to the import and to ``__all__``.
"""

from casework import (  # voluntary return, reintegration, follow-ups
    casefile,
    child_protection,  # the child path (guardian, BID, tracing)
    contacts,  # hotline calls and presumed-victim notifications
    duplicates,
    models,
    reference,
    refusals,  # anonymous refusals of the NRM (codes only)
    reintegration,
    returns,
    supervision,
    timeline,
)

__all__ = [
    "casefile",
    "child_protection",
    "contacts",
    "duplicates",
    "models",
    "reference",
    "refusals",
    "reintegration",
    "returns",
    "supervision",
    "timeline",
]
