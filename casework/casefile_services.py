"""Writes to the case file: indicators, assessments, consent, services, notes and attachments.

Services take model objects and plain data (never ``request``), flush, write one audit entry
(field names only, never values) and one timeline event, and return what they made. They
never commit: the view or CLI command does, once.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

from flask_babel import lazy_gettext as _l
from sqlalchemy import exists, func, select
from sqlalchemy.orm import aliased
from sqlalchemy.orm.exc import StaleDataError

from casework.casefile import (
    RISK_FIELDS,
    Answer,
    Attachment,
    CaseNote,
    ConsentGivenBy,
    ConsentMethod,
    ConsentPurpose,
    ConsentRecord,
    ConsentStatus,
    IndicatorAnswer,
    IndicatorCategory,
    IndicatorDefinition,
    NeedsAssessment,
    RiskAssessment,
    RiskLevel,
    ServiceOutcome,
    ServiceRecord,
    ServiceType,
)
from casework.services import EditConflict
from casework.timeline import add_timeline_event, register_timeline_kind
from core import audit
from core.db import db, utcnow

if TYPE_CHECKING:
    from casework.models import Case
    from core.models import User

DEFAULT_ATTACHMENT_MAX_BYTES = 20 * 1024 * 1024

register_timeline_kind("indicators.recorded", _l("Identification indicators recorded"))
register_timeline_kind("risk_assessment.added", _l("Risk assessment added"))
register_timeline_kind("needs_assessment.added", _l("Needs assessment added"))
register_timeline_kind("consent.recorded", _l("Consent recorded"))
register_timeline_kind("consent.withdrawn", _l("Consent withdrawn"))
register_timeline_kind("service.added", _l("Service recorded"))
register_timeline_kind("service.updated", _l("Service changed"))
register_timeline_kind("note.added", _l("Note added"))
register_timeline_kind("note.edited", _l("Note edited"))
register_timeline_kind("attachment.added", _l("Attachment uploaded"))


class CaseFileError(ValueError):
    """A change the case file refuses; the message is a lazy translation for the user."""


# Identification indicators -----------------------------------------------------------------

# (code, category, English, Azerbaijani, Russian). Drawn from the ILO/UNODC indicator lists
# of trafficking for sexual and labour exploitation (and of child trafficking).
INDICATORS: tuple[tuple[str, str, str, str, str], ...] = (
    (
        "deceived_about_work",
        "general",
        "Deceived about the nature or conditions of the work",
        "İşin xarakteri və ya şərtləri barədə aldadılıb",
        "Обманут(а) относительно характера или условий работы",
    ),
    (
        "documents_withheld",
        "general",
        "Identity or travel documents withheld by others",
        "Şəxsiyyət və ya səyahət sənədləri başqaları tərəfindən saxlanılır",
        "Документы, удостоверяющие личность, удерживаются другими лицами",
    ),
    (
        "debt_bondage",
        "general",
        "Debt bondage: owes a debt that cannot be paid off",
        "Borc əsarəti: ödənilməsi mümkün olmayan borc",
        "Долговая кабала: долг, который невозможно погасить",
    ),
    (
        "restricted_movement",
        "general",
        "Freedom of movement restricted or confined",
        "Hərəkət azadlığı məhdudlaşdırılıb və ya saxlanılır",
        "Свобода передвижения ограничена, удержание",
    ),
    (
        "threats_violence",
        "general",
        "Threats or violence against the person or their family",
        "Şəxsə və ya ailəsinə qarşı hədə və ya zorakılıq",
        "Угрозы или насилие в отношении лица или его семьи",
    ),
    (
        "physical_abuse_signs",
        "general",
        "Signs of physical or psychological abuse",
        "Fiziki və ya psixoloji zorakılıq əlamətləri",
        "Признаки физического или психологического насилия",
    ),
    (
        "controlled_by_others",
        "general",
        "Controlled by others: does not speak or act for themselves",
        "Başqaları tərəfindən nəzarət edilir: özü danışmır və ya hərəkət etmir",
        "Находится под контролем других: не говорит и не действует сам(а)",
    ),
    (
        "isolation",
        "general",
        "Isolated: no contact with family, community or outside world",
        "Təcrid olunub: ailə, icma və ya xarici aləmlə əlaqə yoxdur",
        "Изоляция: нет связи с семьёй, окружением или внешним миром",
    ),
    (
        "fear_of_authorities",
        "general",
        "Afraid of the authorities or of being deported",
        "Hakimiyyət orqanlarından və ya deportasiyadan qorxur",
        "Боится властей или депортации",
    ),
    (
        "recruitment_fee",
        "general",
        "Paid or owes a recruitment or travel fee",
        "İşə götürmə və ya səyahət haqqı ödəyib və ya borcludur",
        "Заплатил(а) или должен(на) за трудоустройство или поездку",
    ),
    (
        "excessive_hours",
        "labour",
        "Excessive working hours without rest days",
        "İstirahət günləri olmadan həddindən artıq iş saatları",
        "Чрезмерная продолжительность работы без выходных",
    ),
    (
        "wages_withheld",
        "labour",
        "No pay, or wages withheld or deducted",
        "Əmək haqqı ödənilmir, saxlanılır və ya tutulur",
        "Нет оплаты, зарплата удерживается или вычитается",
    ),
    (
        "lives_at_workplace",
        "labour",
        "Lives at the workplace or in housing provided by the employer",
        "İş yerində və ya işəgötürənin verdiyi yerdə yaşayır",
        "Живёт на рабочем месте или в жилье работодателя",
    ),
    (
        "degrading_conditions",
        "labour",
        "Degrading living or working conditions",
        "Alçaldıcı yaşayış və ya iş şəraiti",
        "Унизительные условия жизни или труда",
    ),
    (
        "no_contract",
        "labour",
        "No contract, or a contract other than the one promised",
        "Müqavilə yoxdur və ya vəd ediləndən fərqli müqavilə",
        "Нет договора или договор не тот, что обещали",
    ),
    (
        "forced_sexual_services",
        "sexual",
        "Forced to provide sexual services",
        "Seksual xidmətlər göstərməyə məcbur edilib",
        "Принуждение к оказанию сексуальных услуг",
    ),
    (
        "earnings_taken",
        "sexual",
        "Earnings taken by a third party",
        "Qazancı üçüncü şəxs tərəfindən alınır",
        "Заработок забирает третье лицо",
    ),
    (
        "moved_between_places",
        "sexual",
        "Moved often between places or cities",
        "Tez-tez yerlər və ya şəhərlər arasında köçürülür",
        "Часто перемещается между местами или городами",
    ),
    (
        "child_unaccompanied",
        "child",
        "Child without parents or a legal guardian",
        "Valideynləri və ya qanuni nümayəndəsi olmayan uşaq",
        "Ребёнок без родителей или законного представителя",
    ),
    (
        "child_working_or_begging",
        "child",
        "Child working, begging or selling in the street",
        "Uşaq işləyir, dilənçilik edir və ya küçədə satış edir",
        "Ребёнок работает, попрошайничает или торгует на улице",
    ),
    (
        "child_not_in_school",
        "child",
        "Child not attending school",
        "Uşaq məktəbə getmir",
        "Ребёнок не посещает школу",
    ),
)

CATEGORY_ORDER = {"general": 0, "sexual": 1, "labour": 2, "child": 3}


def seed_indicator_definitions() -> int:
    """Add the checklist's indicators that are missing; return how many were added."""
    existing = set(db.session.scalars(select(IndicatorDefinition.code)))
    added = 0
    for position, (code, category, en, az, ru) in enumerate(INDICATORS, start=1):
        if code in existing:
            continue
        db.session.add(
            IndicatorDefinition(
                code=code,
                category=category,
                position=position,
                active=True,
                label_en=en,
                label_az=az,
                label_ru=ru,
            )
        )
        added += 1
    db.session.flush()
    return added


def active_indicators() -> list[IndicatorDefinition]:
    """Return the checklist in display order: by category, then position."""
    rows = db.session.scalars(
        select(IndicatorDefinition).where(IndicatorDefinition.active.is_(True))
    )
    return sorted(rows, key=lambda row: (CATEGORY_ORDER.get(row.category, 9), row.position))


def checklist_for(case: Case) -> list[IndicatorDefinition]:
    """Return the case's checklist: the active indicators, plus retired ones it answered.

    A retired indicator is no longer asked, but a case that answered it keeps showing it.
    """
    answered = select(IndicatorAnswer.indicator_code).where(IndicatorAnswer.case_id == case.id)
    rows = db.session.scalars(
        select(IndicatorDefinition).where(
            IndicatorDefinition.active.is_(True) | IndicatorDefinition.code.in_(answered)
        )
    )
    return sorted(rows, key=lambda row: (CATEGORY_ORDER.get(row.category, 9), row.position))


def all_indicators() -> list[IndicatorDefinition]:
    """Return every indicator, retired ones included, in checklist order (admin page)."""
    rows = db.session.scalars(select(IndicatorDefinition))
    return sorted(rows, key=lambda row: (CATEGORY_ORDER.get(row.category, 9), row.position))


class IndicatorError(ValueError):
    """An indicator change that cannot be made; the message is a lazy translation."""


def add_indicator(
    code: str, category: str, labels: Mapping[str, str], position: int, *, actor: User
) -> IndicatorDefinition:
    """Add an indicator to the checklist (asked from now on), audited.

    :raises IndicatorError: when the code is taken.
    """
    taken = db.session.scalar(
        select(IndicatorDefinition.id).where(IndicatorDefinition.code == code)
    )
    if taken is not None:
        raise IndicatorError(_l("The checklist already has an indicator with this code."))
    indicator = IndicatorDefinition(
        code=code,
        category=IndicatorCategory(category).value,
        position=position,
        active=True,
        **{f"label_{language}": labels.get(language) or "" for language in ("en", "az", "ru")},
    )
    db.session.add(indicator)
    db.session.flush()
    audit.record(
        "indicator.added",
        object_type="indicator",
        object_id=indicator.id,
        field_names=["code", "category", "position", "label_en", "label_az", "label_ru"],
        user=actor,
    )
    return indicator


def update_indicator(
    indicator: IndicatorDefinition,
    category: str,
    labels: Mapping[str, str],
    position: int,
    *,
    actor: User,
) -> list[str]:
    """Change an indicator's labels, category and position; return the changed names.

    The code never changes: answers on cases refer to it.
    """
    wanted = {
        "category": IndicatorCategory(category).value,
        "position": position,
        **{f"label_{language}": labels.get(language) or "" for language in ("en", "az", "ru")},
    }
    changed = [name for name, value in wanted.items() if getattr(indicator, name) != value]
    if not changed:
        return changed
    for name in changed:
        setattr(indicator, name, wanted[name])
    db.session.flush()
    audit.record(
        "indicator.updated",
        object_type="indicator",
        object_id=indicator.id,
        field_names=changed,
        user=actor,
    )
    return changed


def set_indicator_active(indicator: IndicatorDefinition, active: bool, *, actor: User) -> None:
    """Retire or restore an indicator; never delete it (cases' answers refer to it)."""
    if indicator.active == active:
        return
    indicator.active = active
    db.session.flush()
    audit.record(
        "indicator.reactivated" if active else "indicator.deactivated",
        object_type="indicator",
        object_id=indicator.id,
        field_names=["active"],
        user=actor,
    )


def indicator_answers(case: Case) -> dict[str, IndicatorAnswer]:
    """Return the case's answers by indicator code."""
    rows = db.session.scalars(select(IndicatorAnswer).where(IndicatorAnswer.case_id == case.id))
    return {row.indicator_code: row for row in rows}


def record_indicator_answers(
    user: User, case: Case, answers: Mapping[str, tuple[str, str | None]]
) -> list[str]:
    """Save answers (code -> (answer, note)) and return the codes that changed.

    :raises CaseFileError: for an indicator code that is not on the checklist.
    """
    known = {row.code for row in checklist_for(case)}
    unknown = set(answers) - known
    if unknown:
        raise CaseFileError(_l("Unknown indicator."))
    saved = indicator_answers(case)
    changed: list[str] = []
    for code, (answer, note) in answers.items():
        answer = Answer(answer).value
        note = note or None
        row = saved.get(code)
        if row is None:
            if answer == Answer.UNKNOWN.value and note is None:
                continue  # nothing to record: unknown is what an unanswered question means
            row = IndicatorAnswer(case=case, indicator_code=code, answer=answer, note=note)
            db.session.add(row)
        elif row.answer == answer and row.note == note:
            continue
        else:
            row.answer = answer
            row.note = note
        row.answered_by_user_id = user.id
        row.answered_at = utcnow()
        changed.append(code)
    if not changed:
        return changed
    db.session.flush()
    fields = [f"indicator.{code}" for code in sorted(changed)]
    audit.record(
        "indicators.recorded", object_type="case", object_id=case.id, field_names=fields, user=user
    )
    add_timeline_event(
        case,
        "indicators.recorded",
        actor=user,
        object_type="indicator_answers",
        object_id=case.id,
        field_names=fields,
    )
    return changed


# Assessments -------------------------------------------------------------------------------


def add_risk_assessment(
    user: User,
    case: Case,
    levels: Mapping[str, str],
    *,
    notes: str | None = None,
    plan: str | None = None,
) -> RiskAssessment:
    """Record a risk assessment: a level for each of ``RISK_FIELDS``, notes and a plan."""
    assessment = RiskAssessment(
        case=case,
        assessed_at=utcnow(),
        assessor_user_id=user.id,
        **{f"{name}_risk": RiskLevel(levels[name]).value for name in RISK_FIELDS},
    )
    db.session.add(assessment)
    fields = [f"{name}_risk" for name in RISK_FIELDS]
    if notes:
        assessment.notes = notes
        fields.append("notes")
    if plan:
        assessment.plan = plan
        fields.append("plan")
    db.session.flush()
    _record(user, case, "risk_assessment", assessment.id, fields, "risk_assessment.added")
    return assessment


def add_needs_assessment(
    user: User, case: Case, needs: Iterable[str], *, notes: str | None = None
) -> NeedsAssessment:
    """Record a needs assessment: the coded needs and notes."""
    assessment = NeedsAssessment(case=case, assessed_at=utcnow(), assessor_user_id=user.id)
    assessment.needs = list(needs)
    db.session.add(assessment)
    fields = ["needs"]
    if notes:
        assessment.notes = notes
        fields.append("notes")
    db.session.flush()
    _record(user, case, "needs_assessment", assessment.id, fields, "needs_assessment.added")
    return assessment


# Consent -----------------------------------------------------------------------------------


def current_consent(
    case: Case, purpose: ConsentPurpose | str, agency_id: int | None = None
) -> ConsentRecord | None:
    """Return the case's current consent decision for a purpose (and agency), or None.

    The current decision is the latest one: the record no later record supersedes. Check
    ``.is_given`` on the result; a referral needs the agency it goes to.
    """
    purpose = ConsentPurpose(purpose)
    later = aliased(ConsentRecord)
    query = select(ConsentRecord).where(
        ConsentRecord.case_id == case.id,
        ConsentRecord.purpose == purpose.value,
        ~exists().where(later.supersedes_id == ConsentRecord.id),
    )
    if purpose is ConsentPurpose.REFERRAL:
        query = query.where(ConsentRecord.agency_id == agency_id)
    return db.session.scalars(query.order_by(ConsentRecord.recorded_at.desc())).first()


def consent_history(case: Case) -> list[ConsentRecord]:
    """Return every consent record of the case, newest first."""
    return list(
        db.session.scalars(
            select(ConsentRecord)
            .where(ConsentRecord.case_id == case.id)
            .order_by(ConsentRecord.recorded_at.desc())
        )
    )


def current_consents(case: Case) -> list[ConsentRecord]:
    """Return the current decision of each purpose (and referral agency) of the case."""
    history = consent_history(case)
    superseded = {record.supersedes_id for record in history}
    return [record for record in history if record.id not in superseded]


@dataclass(frozen=True)
class ConsentDecision:
    """What a consent form records, besides the purpose and agency."""

    status: str
    recorded_on: date
    how_obtained: str
    consent_text_version: str
    given_by: str = ConsentGivenBy.PERSON.value
    guardian: str | None = None
    best_interests_decision: str | None = None


def is_minor_case(case: Case) -> bool:
    """Return whether the case is a child's (the intake's minor flag, once it exists)."""
    return bool(getattr(case, "is_minor", False))


def record_consent(
    user: User,
    case: Case,
    purpose: ConsentPurpose | str,
    decision: ConsentDecision,
    *,
    agency_id: int | None = None,
) -> ConsentRecord:
    """Record a consent decision; it supersedes the current one for the purpose.

    :raises CaseFileError: when a referral names no agency (or another purpose does), or
        a minor's decision lacks the guardian or the best-interests decision.
    """
    purpose = ConsentPurpose(purpose)
    status = ConsentStatus(decision.status)
    if (purpose is ConsentPurpose.REFERRAL) != (agency_id is not None):
        raise CaseFileError(_l("A referral consent names the agency it allows referrals to."))
    given_by = ConsentGivenBy(decision.given_by)
    if is_minor_case(case):
        if given_by is ConsentGivenBy.PERSON:
            raise CaseFileError(
                _l("For a child, record the guardian or the best-interests decision.")
            )
        if given_by is ConsentGivenBy.GUARDIAN and not decision.guardian:
            raise CaseFileError(_l("Enter the guardian's name and relationship."))
        if given_by is ConsentGivenBy.BEST_INTERESTS and not decision.best_interests_decision:
            raise CaseFileError(_l("Describe the best-interests decision."))
    previous = current_consent(case, purpose, agency_id)
    record = ConsentRecord(
        case=case,
        purpose=purpose.value,
        agency_id=agency_id,
        status=status.value,
        recorded_on=decision.recorded_on,
        how_obtained=ConsentMethod(decision.how_obtained).value,
        consent_text_version=decision.consent_text_version,
        given_by=given_by.value,
        recorded_by_user_id=user.id,
        recorded_at=utcnow(),
        supersedes_id=previous.id if previous is not None else None,
    )
    db.session.add(record)
    fields = ["purpose", "status", "recorded_on", "how_obtained", "consent_text_version"]
    fields.append("given_by")
    if purpose is ConsentPurpose.REFERRAL:
        fields.append("agency_id")
    if decision.guardian and given_by is ConsentGivenBy.GUARDIAN:
        record.guardian = decision.guardian
        fields.append("guardian")
    if decision.best_interests_decision and given_by is ConsentGivenBy.BEST_INTERESTS:
        record.best_interests_decision = decision.best_interests_decision
        fields.append("best_interests_decision")
    db.session.flush()
    withdrawn = status is ConsentStatus.WITHDRAWN
    kind = "consent.withdrawn" if withdrawn else "consent.recorded"
    _record(user, case, "consent", record.id, fields, kind)
    if withdrawn:
        on_consent_withdrawn(case, purpose, agency_id=agency_id)
    return record


def withdraw_consent(
    user: User,
    case: Case,
    purpose: ConsentPurpose | str,
    decision: ConsentDecision,
    *,
    agency_id: int | None = None,
) -> ConsentRecord:
    """Record that a given consent is withdrawn; the earlier records stay as history.

    :raises CaseFileError: when the current decision for the purpose is not "given".
    """
    current = current_consent(case, purpose, agency_id)
    if current is None or not current.is_given:
        raise CaseFileError(_l("There is no given consent to withdraw."))
    withdrawal = ConsentDecision(
        status=ConsentStatus.WITHDRAWN.value,
        recorded_on=decision.recorded_on,
        how_obtained=decision.how_obtained,
        consent_text_version=current.consent_text_version,
        given_by=decision.given_by,
        guardian=decision.guardian,
        best_interests_decision=decision.best_interests_decision,
    )
    return record_consent(user, case, purpose, withdrawal, agency_id=agency_id)


def on_consent_withdrawn(
    case: Case, purpose: ConsentPurpose, *, agency_id: int | None = None
) -> None:
    """React to a withdrawn consent, in the same transaction as the withdrawal.

    Calls the handlers later areas registered (referrals cancels the open referrals that
    relied on the consent), so casework never imports them.
    """
    for handler in CONSENT_WITHDRAWN_HANDLERS:
        handler(case, purpose, agency_id=agency_id)


# Called as handler(case, purpose, agency_id=...) when a consent is withdrawn.
CONSENT_WITHDRAWN_HANDLERS: list[Callable[..., object]] = []


def register_consent_withdrawn_handler(handler: Callable[..., object]) -> None:
    """Have ``handler`` called, in the withdrawal's transaction, when a consent is withdrawn."""
    if handler not in CONSENT_WITHDRAWN_HANDLERS:
        CONSENT_WITHDRAWN_HANDLERS.append(handler)


# Services ----------------------------------------------------------------------------------


def add_service_record(
    user: User,
    case: Case,
    *,
    service_type: str,
    provider_agency_id: int,
    started_on: date,
    ended_on: date | None = None,
    outcome: str | None = None,
    outcome_note: str | None = None,
) -> ServiceRecord:
    """Record a service delivered to the person.

    :raises CaseFileError: when the service ends before it starts.
    """
    if ended_on is not None and ended_on < started_on:
        raise CaseFileError(_l("A service cannot end before it starts."))
    record = ServiceRecord(
        case=case,
        service_type=ServiceType(service_type).value,
        provider_agency_id=provider_agency_id,
        started_on=started_on,
        ended_on=ended_on,
        outcome=ServiceOutcome(outcome).value if outcome else None,
        recorded_by_user_id=user.id,
        recorded_at=utcnow(),
    )
    db.session.add(record)
    fields = ["service_type", "provider_agency_id", "started_on"]
    fields += [name for name, value in (("ended_on", ended_on), ("outcome", outcome)) if value]
    if outcome_note:
        record.outcome_note = outcome_note
        fields.append("outcome_note")
    db.session.flush()
    _record(user, case, "service_record", record.id, fields, "service.added")
    return record


# Fields of a service record an edit may change, in form order.
SERVICE_FIELDS = (
    "service_type",
    "provider_agency_id",
    "started_on",
    "ended_on",
    "outcome",
    "outcome_note",
)


def service_values(record: ServiceRecord) -> dict[str, object]:
    """Return the editable fields of a service record (the note decrypted) by name."""
    return {name: getattr(record, name) for name in SERVICE_FIELDS}


def update_service_record(
    user: User, record: ServiceRecord, values: Mapping[str, object], *, expected_version: int
) -> list[str]:
    """Change a service record unless it moved past the version the user edited.

    Returns the names of the fields that changed; an unchanged form changes nothing.

    :raises EditConflict: when the record is no longer at ``expected_version`` (checked here
        and again by the database's versioned UPDATE).
    :raises CaseFileError: when the service ends before it starts.
    """
    if record.version != expected_version:
        raise EditConflict
    started_on = values.get("started_on", record.started_on)
    ended_on = values.get("ended_on", record.ended_on)
    if ended_on is not None and started_on is not None and ended_on < started_on:
        raise CaseFileError(_l("A service cannot end before it starts."))
    wanted = dict(values)
    if "service_type" in wanted:
        wanted["service_type"] = ServiceType(wanted["service_type"]).value
    if wanted.get("outcome"):
        wanted["outcome"] = ServiceOutcome(wanted["outcome"]).value
    changed = _apply(record, wanted)
    if not changed:
        return changed
    record.edited_at = utcnow()
    record.edited_by_user_id = user.id
    _flush_versioned()
    _record(user, record.case, "service_record", record.id, changed, "service.updated")
    return changed


# Notes -------------------------------------------------------------------------------------


def edit_case_note(user: User, note: CaseNote, body: str, *, expected_version: int) -> bool:
    """Correct a note's text, marking it edited; return whether anything changed.

    The note keeps its author and time; the edit is stamped on it and on the timeline.

    :raises EditConflict: when the note is no longer at ``expected_version``.
    """
    if note.version != expected_version:
        raise EditConflict
    if not _apply(note, {"body": body}):
        return False
    note.edited_at = utcnow()
    note.edited_by_user_id = user.id
    _flush_versioned()
    _record(user, note.case, "case_note", note.id, ["body"], "note.edited")
    return True


def _apply(row: object, values: Mapping[str, object]) -> list[str]:
    """Set the values that differ (blank text counts as none); return the changed names."""
    changed = []
    for name, value in values.items():
        if isinstance(value, str):
            value = value.strip() or None
        if getattr(row, name) != value:
            setattr(row, name, value)
            changed.append(name)
    return changed


def _flush_versioned() -> None:
    try:
        db.session.flush()
    except StaleDataError as error:
        # Another transaction committed a new version between our read and our UPDATE.
        raise EditConflict from error


def add_case_note(user: User, case: Case, body: str) -> CaseNote:
    """Add a note to the case."""
    note = CaseNote(case=case, author_user_id=user.id, created_at=utcnow(), body=body)
    db.session.add(note)
    db.session.flush()
    _record(user, case, "case_note", note.id, ["body"], "note.added")
    return note


# Attachments -------------------------------------------------------------------------------


@dataclass(frozen=True)
class FileType:
    content_type: str
    extensions: tuple[str, ...]

    @property
    def extension(self) -> str:
        return self.extensions[0]


PDF = FileType("application/pdf", ("pdf",))
PNG = FileType("image/png", ("png",))
JPEG = FileType("image/jpeg", ("jpg", "jpeg"))
DOCX = FileType(
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document", ("docx",)
)
XLSX = FileType("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", ("xlsx",))
ODT = FileType("application/vnd.oasis.opendocument.text", ("odt",))
TEXT = FileType("text/plain; charset=utf-8", ("txt",))
ACCEPTED_EXTENSIONS = ("pdf", "png", "jpg", "jpeg", "docx", "xlsx", "odt", "txt")
# Control characters other than tab, line feed, form feed and carriage return.
_CONTROL = bytes(set(range(32)) - {9, 10, 12, 13}) + b"\x7f"


def sniff_file_type(content: bytes) -> FileType | None:
    """Return the type of a file judged by its content alone, or None when not accepted."""
    if content.startswith(b"%PDF-"):
        return PDF
    if content.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if content.startswith(b"\xff\xd8\xff"):
        return JPEG
    if content.startswith(b"PK\x03\x04"):
        return _sniff_zip(content)
    return _sniff_text(content)


def _sniff_zip(content: bytes) -> FileType | None:
    """Tell DOCX, XLSX and ODT apart by their inner files (names only; nothing unpacked)."""
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            names = set(archive.namelist())
            if "mimetype" in names and archive.getinfo("mimetype").file_size < 100:
                if archive.read("mimetype").strip() == ODT.content_type.encode():
                    return ODT
                return None
    except (zipfile.BadZipFile, ValueError, OSError, RuntimeError, KeyError):
        return None
    if "[Content_Types].xml" not in names:
        return None
    if "word/document.xml" in names:
        return DOCX
    if "xl/workbook.xml" in names:
        return XLSX
    return None


def _sniff_text(content: bytes) -> FileType | None:
    if not content:
        return None
    try:
        content.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if any(byte in _CONTROL for byte in content[:65536]):
        return None
    return TEXT


def file_extension(filename: str) -> str:
    """Return the lower-case extension of a file name ('' when there is none)."""
    name = filename.rsplit("/", 1)[-1].rsplit("\\", 1)[-1]
    return name.rsplit(".", 1)[-1].lower() if "." in name else ""


def check_upload(filename: str, content: bytes, *, max_bytes: int) -> FileType:
    """Return the file's type, judged by content and matching its extension.

    :raises CaseFileError: for an empty or too large file, a type Haven does not accept, or
        a name whose extension disagrees with the content.
    """
    if not content:
        raise CaseFileError(_l("The file is empty."))
    if len(content) > max_bytes:
        raise CaseFileError(
            _l("Files can be at most %(size)s MB.", size=_megabytes(max_bytes)),
        )
    kind = sniff_file_type(content)
    if kind is None:
        raise CaseFileError(
            _l("Haven accepts PDF, PNG, JPEG, DOCX, XLSX, ODT and plain text files only.")
        )
    if file_extension(filename) not in kind.extensions:
        raise CaseFileError(_l("The file name's extension does not match the file's content."))
    return kind


def _megabytes(size: int) -> str:
    value = size / (1024 * 1024)
    return f"{value:.0f}" if value >= 1 else f"{value:.2f}"


def add_attachment(
    user: User,
    case: Case,
    *,
    filename: str,
    content: bytes,
    max_bytes: int,
    description: str | None = None,
) -> Attachment:
    """Store a file of the case, encrypted, after checking its type by content.

    :raises CaseFileError: see ``check_upload``.
    """
    kind = check_upload(filename, content, max_bytes=max_bytes)
    number = (
        db.session.scalar(select(func.max(Attachment.number)).where(Attachment.case_id == case.id))
        or 0
    ) + 1
    attachment = Attachment(
        case=case,
        number=number,
        uploaded_by_user_id=user.id,
        uploaded_at=utcnow(),
        size=len(content),
        content_type=kind.content_type,
        extension=file_extension(filename),
    )
    db.session.add(attachment)
    attachment.original_filename = filename.rsplit("/", 1)[-1].rsplit("\\", 1)[-1][:255]
    attachment.content = content
    fields = ["original_filename", "content", "size", "content_type"]
    if description:
        attachment.description = description
        fields.append("description")
    db.session.flush()
    _record(user, case, "attachment", attachment.id, fields, "attachment.added")
    return attachment


def attachments_of(case: Case) -> list[Attachment]:
    """Return the case's attachments by number, without loading their content."""
    return list(
        db.session.scalars(
            select(Attachment).where(Attachment.case_id == case.id).order_by(Attachment.number)
        )
    )


def download_name(attachment: Attachment) -> str:
    """Return the name a download gets: the case reference and the number, nothing personal."""
    return f"{attachment.case.reference}-attachment-{attachment.number}.{attachment.extension}"


def read_attachment(user: User, attachment: Attachment) -> bytes:
    """Return an attachment's decrypted content, auditing the read."""
    content = attachment.content
    audit.record(
        "attachment.downloaded",
        object_type="attachment",
        object_id=attachment.id,
        field_names=["content"],
        user=user,
    )
    return content


# Shared ------------------------------------------------------------------------------------


def _record(
    user: User, case: Case, object_type: str, object_id: str, fields: list[str], kind: str
) -> None:
    """Write the audit entry (field names only) and the timeline event of a change."""
    audit.record(kind, object_type=object_type, object_id=object_id, field_names=fields, user=user)
    add_timeline_event(
        case, kind, actor=user, object_type=object_type, object_id=object_id, field_names=fields
    )
