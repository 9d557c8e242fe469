"""What the receiver's referral page shows of the case: exactly the shared sections.

Read-only helpers for the views. Only the sections asked for are decrypted and turned into
display rows; nothing else of the case leaves this module.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from casework.casefile import NeedsAssessment, RiskAssessment
from casework.casefile_services import attachments_of
from casework.intake import Row, case_sections
from casework.models import Case
from core.db import db
from referrals.models import SharedSection

# Sections drawn from the intake's fields (the others are whole records).
_FIELD_SECTIONS = (
    SharedSection.IDENTITY,
    SharedSection.CONTACT,
    SharedSection.HEALTH,
    SharedSection.EXPLOITATION,
)


# The risk names of RiskAssessment.levels(), labelled as on the case's assessments page.
RISK_LABELS = {
    "retaliation": _l("Risk of retaliation"),
    "retrafficking": _l("Risk of re-trafficking"),
    "health_emergency": _l("Risk of a health emergency"),
    "self_harm": _l("Risk of self-harm"),
}


@dataclass
class SharedBlock:
    """One shared section as the page shows it."""

    section: SharedSection
    rows: list[Row] = field(default_factory=list)
    risk: Any = None
    needs: Any = None
    attachments: list[Any] = field(default_factory=list)

    @property
    def title(self) -> str:
        return self.section.label


def shared_content(case: Case, sections: Iterable[SharedSection]) -> list[SharedBlock]:
    """Return the display blocks of exactly these sections of the case, in section order."""
    wanted = [section for section in SharedSection if section in set(sections)]
    if not wanted or case.is_erased:
        return []
    rows: dict[str, Row] = {}
    if any(section in _FIELD_SECTIONS for section in wanted):
        rows = {row.name: row for part in case_sections(case) for row in part.rows}
    blocks = []
    for section in wanted:
        block = SharedBlock(section)
        if section in _FIELD_SECTIONS:
            block.rows = [rows[name] for name in section.field_names if name in rows]
        elif section is SharedSection.ASSESSMENTS:
            block.risk = _latest(RiskAssessment, case)
            block.needs = _latest(NeedsAssessment, case)
        elif section is SharedSection.DOCUMENTS:
            block.attachments = attachments_of(case)
        blocks.append(block)
    return blocks


def _latest(model: Any, case: Case) -> Any:
    return db.session.scalars(
        select(model).where(model.case_id == case.id).order_by(model.assessed_at.desc()).limit(1)
    ).first()
