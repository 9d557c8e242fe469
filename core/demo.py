"""Demo data: one fictional agency of every type, an account for every role, synthetic cases.

Everything here is invented. Agency and staff names sound Azerbaijani but belong to no real
organisation or person; case names, phones, documents and addresses come from Faker.

Every demo account signs in with the password ``DEMO_PASSWORD`` and the TOTP secret
``DEMO_TOTP_SECRET`` (add it to any authenticator app by hand, or run
``flask demo code EMAIL`` to print the current code). Both are public: demo data is for
development and test systems, and ``flask demo load`` refuses to run in production.

Two ways in: ``load_demo_data`` (a few hundred cases, ``make run``) opens every case through
the UI's service (``casework.services.open_case``); ``generate_cases`` (``flask demo cases``,
benchmarks, 100k cases in well under a minute) writes the same rows in bulk, one INSERT per
table and one commit per batch, with the same encryption (a data key per case, wrapped by
the KEK), the same blind indexes (``Case.blind_index_values``) and the same audit entry.

Layering note: ``core`` does not import blueprints, but demo cases are casework's cases, so
those imports happen lazily inside the functions that need them.
"""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import click
import pyotp
from faker import Faker
from flask import current_app, g
from flask.cli import AppGroup
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from core.config import is_production
from core.crypto import _G_CIPHERS as crypto_cipher_cache
from core.crypto import DataKey, current_keyring, encrypt_value, encrypted_fields
from core.db import db, new_uuid, utcnow
from core.models import Agency, AgencyType, Role, User

DEMO_PASSWORD = "haven-demo-password"  # noqa: S105 - public on purpose, see the docstring
# Base32, 160 bits. Public on purpose: type it into an authenticator app to sign in.
DEMO_TOTP_SECRET = "HAVENDEMOTOTPSECRETFORTESTERS234"  # noqa: S105
DEMO_CASE_COUNT = 200
DEMO_SEED = 2026
# Birth dates are counted back from a fixed day, not from today, so the data is the same
# whenever it is generated.
_AGE_REFERENCE_DAY = date(2025, 12, 31)


@dataclass(frozen=True)
class DemoAgency:
    key: str
    name: str
    type: AgencyType
    coordinator: bool = False
    # Whether the agency opens and holds cases (and so gets a caseworker and demo cases).
    holds_cases: bool = True
    # False for agencies that identify people but keep no case file: their caseworker sends
    # presumed-victim notifications (casework.contacts) and they get no demo cases.
    keeps_case_files: bool = True
    # Share of the demo cases it holds, relative to the others.
    case_weight: int = 1


@dataclass(frozen=True)
class DemoUser:
    email: str
    display_name: str
    agency_key: str
    roles: tuple[Role, ...]


DEMO_AGENCIES: tuple[DemoAgency, ...] = (
    DemoAgency("ngo", "Təmiz Dünya NGO", AgencyType.NGO, case_weight=8),
    DemoAgency("shelter", "Ümid Evi Shelter", AgencyType.SHELTER, case_weight=5),
    DemoAgency("health", "Şəfa Family Health Centre", AgencyType.HEALTH, case_weight=3),
    DemoAgency(
        "police",
        "Xəzər Regional Police — Counter-Trafficking Unit",
        AgencyType.POLICE,
        case_weight=3,
    ),
    DemoAgency(
        "labour",
        "Abşeron Labour Inspectorate",
        AgencyType.LABOUR_INSPECTORATE,
        keeps_case_files=False,
    ),
    DemoAgency(
        "border",
        "Yeniabad Border Checkpoint Service",
        AgencyType.BORDER_SERVICE,
        keeps_case_files=False,
    ),
    DemoAgency(
        "migration",
        "Sumqayıt Migration Office",
        AgencyType.MIGRATION_SERVICE,
        keeps_case_files=False,
    ),
    DemoAgency(
        "child", "Gələcək Child Protection Centre", AgencyType.CHILD_PROTECTION, case_weight=2
    ),
    DemoAgency("legal", "Ədalət Legal Aid Bureau", AgencyType.LEGAL_AID),
    DemoAgency("hotline", "Səs Ver Helpline", AgencyType.HOTLINE, case_weight=2),
    DemoAgency(
        "consular",
        "Consular Assistance Desk, Dubai",
        AgencyType.CONSULAR,
        keeps_case_files=False,
    ),
    DemoAgency("intl", "Caspian Partnership for Safe Migration", AgencyType.INTERNATIONAL_ORG),
    DemoAgency(
        "ombudsman", "Regional Ombudsman Office Gəncəbad", AgencyType.OMBUDSMAN, holds_cases=False
    ),
    DemoAgency(
        "ministry", "Ministry of Social Welfare (demo)", AgencyType.MINISTRY, holds_cases=False
    ),
    DemoAgency(
        "nrm",
        "National Coordinator — Office for Combating Trafficking",
        AgencyType.MINISTRY,
        coordinator=True,
        holds_cases=False,
    ),
)

# Staff display names for the caseworkers of the agencies without a documented account.
_CASEWORKER_NAMES = {
    "ngo": "Aysel Quliyeva",
    "shelter": "Günel Həsənova",
    "health": "Dr Elnarə Rzayeva",
    "police": "Kamran Əliyev",
    "labour": "Rəşad Məmmədli",
    "border": "Tural Nəsirov",
    "migration": "Səbinə Kərimova",
    "child": "Nərmin Abbasova",
    "legal": "Orxan Süleymanov",
    "hotline": "Lalə Cəfərova",
    "consular": "Elçin Hüseynov",
    "intl": "Mariya Petrenko",
}

DEMO_USERS: tuple[DemoUser, ...] = (
    *(
        DemoUser(
            f"caseworker@{agency.key}.demo",
            _CASEWORKER_NAMES[agency.key],
            agency.key,
            (Role.CASEWORKER,),
        )
        for agency in DEMO_AGENCIES
        if agency.holds_cases
    ),
    DemoUser("supervisor@ngo.demo", "Fidan İsmayılova", "ngo", (Role.SUPERVISOR,)),
    DemoUser("supervisor@shelter.demo", "Samirə Bağırova", "shelter", (Role.SUPERVISOR,)),
    DemoUser("coordinator@nrm.demo", "Zaur Əhmədov", "nrm", (Role.COORDINATOR,)),
    DemoUser("analyst@ministry.demo", "Leyla Mustafayeva", "ministry", (Role.ANALYST,)),
    DemoUser("admin@haven.demo", "Haven Administrator", "nrm", (Role.ADMIN,)),
    DemoUser("auditor@haven.demo", "Vüsal Qasımov", "nrm", (Role.AUDITOR,)),
)

DEMO_EMAILS = frozenset(user.email for user in DEMO_USERS)


@dataclass
class DemoSummary:
    """What one load created (everything already present is left as it was)."""

    agencies: int = 0
    users: int = 0
    cases: int = 0
    referrals: int = 0
    transfers: int = 0
    status_decisions: int = 0
    skipped_users: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return (
            f"{self.agencies} agencies, {self.users} users, {self.cases} cases,"
            f" {self.referrals} referrals, {self.transfers} transfers and"
            f" {self.status_decisions} status-decision requests created"
            f" (password {DEMO_PASSWORD!r}, TOTP secret {DEMO_TOTP_SECRET})"
        )


# Loading -------------------------------------------------------------------------------


def load_demo_data(case_count: int = DEMO_CASE_COUNT) -> DemoSummary:
    """Create the demo agencies, accounts and cases that do not exist yet, and commit.

    Idempotent: agencies are matched by name, accounts by e-mail, and cases are topped up
    to ``case_count`` across the demo agencies, so a second run creates nothing. Commits
    (it is the body of a CLI command); never call it in production.
    """
    summary = DemoSummary()
    agencies = _ensure_agencies(summary)
    users = _ensure_users(agencies, summary)
    existing = _demo_case_count(agencies)
    if existing < case_count:
        # The same people every time: a run interrupted after n cases resumes at n + 1.
        people = synthetic_people(case_count, seed=DEMO_SEED, skip=existing)
        summary.cases = _open_cases(users, people)
    summary.referrals, summary.transfers = _ensure_referrals(users)
    summary.status_decisions = _ensure_status_decisions(users)
    # Anonymous refusals and reconsiderations of negative decisions (issue 7); lazy, as core
    # imports no area at module level.
    from referrals.reconsiderations import seed_demo_refusals_and_reconsiderations

    seed_demo_refusals_and_reconsiderations(users)
    # Hotline calls and presumed-victim notifications (issue 7), through their services.
    from casework.contacts import seed_demo_contacts

    seed_demo_contacts(users)
    # The child path (issue 7): guardians, best-interests determinations, tracing.
    from casework.child_protection import seed_demo_child_path

    seed_demo_child_path(users)
    # Voluntary return, reintegration and follow-up visits (issue 7), through their services.
    from casework.returns import seed_demo_returns

    seed_demo_returns(users)
    # Enough status decisions for the statistics of decisions to publish (issue 7).
    from reports.nrm_demo import seed_demo_status_decisions

    seed_demo_status_decisions(users)
    # Enough hotline calls for the statistics of incoming reports to publish (issue 7).
    from reports.nrm_path_demo import seed_demo_hotline_calls

    seed_demo_hotline_calls(users)
    seed_demo_population()
    db.session.commit()
    return summary


def generate_cases(count: int, batch_size: int = 1000, *, seed: int | None = None) -> int:
    """Add ``count`` synthetic cases across the demo agencies in bulk, committing per batch.

    For benchmarks. Makes sure the demo agencies and accounts exist first. The rows are those
    ``open_case`` writes (see ``_BulkCaseWriter``), without an ORM object per case. Returns the
    number of cases added.

    :raises ReferenceExhausted: when the year runs out of references, or when concurrent
        inserts keep taking the references a batch allocated.
    """
    summary = DemoSummary()
    agencies = _ensure_agencies(summary)
    users = _ensure_users(agencies, summary)
    db.session.commit()
    if seed is None:
        # Different people from the demo set and from earlier runs, still reproducible.
        seed = DEMO_SEED + _demo_case_count(agencies)
    owners = {key: (user.agency_id, user.id, user.agency.type) for key, user in users.items()}
    writer = _BulkCaseWriter(owners)
    people = pooled_people(count, seed=seed)
    added = 0
    while added < count:
        batch = list(itertools.islice(people, min(batch_size, count - added)))
        added += writer.write(batch)
    return added


def _ensure_agencies(summary: DemoSummary) -> dict[str, Agency]:
    names = [agency.name for agency in DEMO_AGENCIES]
    found = {a.name: a for a in db.session.scalars(select(Agency).where(Agency.name.in_(names)))}
    agencies = {}
    for demo in DEMO_AGENCIES:
        agency = found.get(demo.name)
        if agency is None:
            agency = Agency(
                name=demo.name,
                type=demo.type.value,
                is_national_coordinator=demo.coordinator,
                keeps_case_files=demo.keeps_case_files,
            )
            db.session.add(agency)
            summary.agencies += 1
        agencies[demo.key] = agency
    db.session.flush()
    seed_demo_services(agencies)
    return agencies


# What each demo agency lists in the service directory: (service type, regions (None for
# nationwide), languages, accepted groups, total places, free places).
_EVERYONE = ("women", "men", "children", "families")
_ADULTS = ("women", "men")
DEMO_SERVICES: dict[str, tuple[tuple, ...]] = {
    "ngo": (
        ("psychological", ("baku", "absheron_khizi"), ("az", "ru", "en"), _EVERYONE, None, None),
        ("legal_aid", ("baku", "absheron_khizi"), ("az", "ru"), _ADULTS, None, None),
        ("reintegration", None, ("az", "ru"), _EVERYONE, None, None),
        ("vocational_training", ("baku",), ("az",), ("women",), 15, 4),
        ("interpretation", ("baku",), ("az", "ru", "en", "fa", "uz"), _EVERYONE, None, None),
    ),
    "shelter": (("shelter", None, ("az", "ru", "en"), ("women", "children", "families"), 24, 5),),
    "health": (
        ("medical", ("baku", "absheron_khizi"), ("az", "ru", "en"), _EVERYONE, None, None),
        ("psychological", ("baku",), ("az", "ru"), _EVERYONE, None, None),
    ),
    "police": (("law_enforcement_interview", None, ("az", "ru", "en"), _EVERYONE, None, None),),
    "child": (
        ("child_protection", None, ("az", "ru"), ("children", "families"), None, None),
        ("shelter", ("baku", "ganja_dashkasan"), ("az", "ru"), ("children",), 12, 0),
    ),
    "legal": (("legal_aid", None, ("az", "ru", "en"), _EVERYONE, None, None),),
    "hotline": (("psychological", None, ("az", "ru", "en"), _EVERYONE, None, None),),
    "consular": (("voluntary_return", ("abroad",), ("az", "ru", "en", "ar"), _ADULTS, None, None),),
    "intl": (
        ("voluntary_return", None, ("az", "ru", "en", "tr", "uz", "tg"), _EVERYONE, None, None),
        ("reintegration", None, ("az", "ru", "en"), _EVERYONE, None, None),
        ("financial", None, ("az", "ru", "en"), _EVERYONE, None, None),
    ),
    "nrm": (("status_decision", None, ("az", "ru", "en"), _EVERYONE, None, None),),
}


def seed_demo_services(agencies: dict[str, Agency]) -> int:
    """List the demo agencies' services in the directory (those missing); return how many.

    Through the directory's own services, so the rows and audit entries are the UI's.
    """
    from casework.reference import seed_reference_lists
    from referrals.directory import AgencyService
    from referrals.directory_services import create_service, update_capacity

    # The regions are codes of the region reference list.
    seed_reference_lists()
    listed = set(db.session.execute(select(AgencyService.agency_id, AgencyService.service_type)))
    added = 0
    for key, offers in DEMO_SERVICES.items():
        agency = agencies[key]
        for service_type, regions, languages, accepts, total, free in offers:
            if (agency.id, service_type) in listed:
                continue
            service = create_service(
                agency,
                service_type=service_type,
                nationwide=regions is None,
                regions=regions or (),
                languages=languages,
                accepts=accepts,
                contact_hours="Mon-Fri 09:00-18:00",
                total_places=total,
            )
            if free is not None:
                update_capacity(service, free_places=free)
            added += 1
    return added


# Invented population figures (thousands of people, women and men, youngest band first) so
# the demo reports show rates. Not official statistics; the source says so.
DEMO_POPULATION_SOURCE = "SYNTHETIC DEMO FIGURES - not official statistics"
DEMO_POPULATION_THOUSANDS = {
    # 0-11, 12-17, 18-24, 25-34, 35-49, 50+
    "Feminine": (880, 390, 430, 840, 1100, 1500),
    "Masculine": (950, 420, 460, 860, 1070, 1200),
}
DEMO_POPULATION_YEARS = (2023, 2024, 2025)


def seed_demo_population() -> int:
    """Enter synthetic population tables for the demo years that have none; return how many.

    Through the population service, as the admin page does (audited as the demo admin).
    """
    from reports.population import POPULATION_AGE_BANDS, population_of, save_population

    admin = db.session.scalar(select(User).where(User.email == "admin@haven.demo"))
    added = 0
    for offset, year in enumerate(DEMO_POPULATION_YEARS):
        if population_of(year) is not None:
            continue
        # A little growth per year, so the years differ.
        figures = {
            (sex, band): thousands * (1000 + 8 * offset)
            for sex, row in DEMO_POPULATION_THOUSANDS.items()
            for band, thousands in zip(POPULATION_AGE_BANDS, row, strict=True)
        }
        save_population(year, figures, DEMO_POPULATION_SOURCE, actor=admin)
        added += 1
    return added


def _ensure_users(agencies: dict[str, Agency], summary: DemoSummary) -> dict[str, User]:
    """Create the missing demo accounts; return the caseworker of each case-holding agency."""
    from core.passwords import hash_password

    emails = [user.email for user in DEMO_USERS]
    found = {u.email: u for u in db.session.scalars(select(User).where(User.email.in_(emails)))}
    # One argon2 hash for every demo account: the password is public anyway, and hashing it
    # twenty times would make each load seconds slower.
    password_hash = None
    users: dict[str, User] = {}
    for demo in DEMO_USERS:
        user = found.get(demo.email)
        if user is None:
            password_hash = password_hash or hash_password(DEMO_PASSWORD)
            user = User(
                agency=agencies[demo.agency_key],
                email=demo.email,
                display_name=demo.display_name,
                password_hash=password_hash,
                language="en",
                password_changed_at=utcnow(),
            )
            user.set_roles(list(demo.roles))
            db.session.add(user)
            # The id is bound into the TOTP secret's ciphertext: flush before setting it.
            db.session.flush()
            user.totp_secret = DEMO_TOTP_SECRET
            user.totp_confirmed_at = utcnow()
            summary.users += 1
        if demo.roles == (Role.CASEWORKER,) and demo.email.startswith("caseworker@"):
            users[demo.agency_key] = user
    db.session.flush()
    return users


def _case_holders() -> list[DemoAgency]:
    return [agency for agency in DEMO_AGENCIES if agency.holds_cases and agency.keeps_case_files]


def _demo_case_count(agencies: dict[str, Agency]) -> int:
    from casework.contacts import IncomingReport
    from casework.models import Case

    ids = [agencies[agency.key].id for agency in _case_holders()]
    # Cases opened from demo hotline calls and notifications are not synthetic people.
    from_reports = select(IncomingReport.case_id).where(IncomingReport.case_id.is_not(None))
    return db.session.scalar(
        select(func.count())
        .select_from(Case)
        .where(Case.owner_agency_id.in_(ids), Case.id.not_in(from_reports))
    )


def _open_cases(users: dict[str, User], people: Iterator[tuple[str, dict[str, object]]]) -> int:
    """Open a case for each synthetic person through the UI's service; return how many."""
    from casework.services import open_case

    opened = 0
    for agency_key, person in people:
        open_case(users[agency_key], person)
        opened += 1
    db.session.flush()
    return opened


# Referrals ------------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoReferral:
    """One demo referral: who refers to whom, for what, and how far it went.

    ``steps`` are the workflow actions after the draft, each with how many hours ago it
    happened (the services take that moment as their clock); texts are invented. A
    ``decide`` step records the national coordinator's ``outcome`` (with ``reason_code``
    and ``text`` as its reason), which completes the referral.
    """

    sender: str
    receiver: str
    service_type: str
    urgency: str
    sections: tuple[str, ...]
    reason: str
    created_hours_ago: float
    steps: tuple[tuple[str, float], ...] = ()
    text: str | None = None
    note: str | None = None
    outcome: str | None = None
    reason_code: str | None = None


# A referral in every state between the demo agencies, newest last.
DEMO_REFERRALS: tuple[DemoReferral, ...] = (
    DemoReferral(
        "ngo",
        "legal",
        "legal_aid",
        "routine",
        ("identity", "exploitation"),
        "Wants to claim the wages withheld by the employer; needs a lawyer.",
        26,
    ),
    DemoReferral(
        "ngo",
        "health",
        "medical",
        "urgent",
        ("identity", "health"),
        "Medical check after leaving the place of exploitation; reports back pain.",
        3,
        (("send", 2),),
    ),
    # Past its deadline and still "sent": the next page view or `flask referrals expire`
    # moves it to expired, as in production.
    DemoReferral(
        "police",
        "ngo",
        "psychological",
        "routine",
        ("identity", "contact"),
        "Witness in an open investigation; asks for psychological support.",
        150,
        (("send", 149),),
    ),
    DemoReferral(
        "ngo",
        "shelter",
        "shelter",
        "urgent",
        ("identity", "contact", "assessments"),
        "Needs a safe place tonight; the recruiter knows her address.",
        50,
        (("send", 49), ("accept", 40)),
    ),
    DemoReferral(
        "ngo",
        "child",
        "shelter",
        "urgent",
        ("identity", "contact"),
        "Needs a safe place together with her son.",
        80,
        (("send", 79), ("decline", 70)),
        text="Our shelter takes children only; please refer the family to a family shelter.",
    ),
    DemoReferral(
        "ngo",
        "health",
        "psychological",
        "routine",
        ("identity", "health", "assessments"),
        "Sleep problems and anxiety since the return; agreed to counselling.",
        240,
        (("send", 238), ("accept", 200), ("start", 190)),
        note="First session held; weekly sessions planned.",
    ),
    DemoReferral(
        "ngo",
        "health",
        "medical",
        "routine",
        ("identity", "health"),
        "Dental pain, untreated for months.",
        500,
        (("send", 499), ("accept", 480), ("start", 470), ("complete", 300)),
        text="Two teeth treated; no follow-up needed.",
        note="Treatment finished; the person was satisfied.",
    ),
    DemoReferral(
        "ngo",
        "legal",
        "legal_aid",
        "routine",
        ("identity",),
        "Help with a new identity document.",
        320,
        (("send", 319), ("cancel", 300)),
        text="The consular section issued the document in the meantime.",
    ),
    DemoReferral(
        "police",
        "intl",
        "voluntary_return",
        "routine",
        ("identity", "contact"),
        "Wishes to return home to her family; has no passport.",
        400,
        (("send", 399), ("expire", 0)),
    ),
)

# Requests for the national coordinator's status decision, one at every step, so that the
# coordinator's "Status decisions" page has rows and the cases' NRM statuses run from
# presumed (every other case) through pending_decision to recognised and not_recognised.
# Urgent, so the answer is due 24 hours after sending: the demo people were identified long
# ago, which puts the country rule's deadline (from identification) in the past, and
# ``referrals.decisions`` then counts from the sending.
DEMO_STATUS_DECISIONS: tuple[DemoReferral, ...] = (
    DemoReferral(
        "ngo",
        "nrm",
        "status_decision",
        "urgent",
        ("identity", "exploitation", "assessments"),
        "Recruited for hotel work abroad, passport taken, debt bondage; asks for the status.",
        400,
        (("send", 398), ("accept", 390), ("decide", 200)),
        text="Deception, withheld documents and debt bondage are established by the interviews.",
        outcome="recognised",
    ),
    DemoReferral(
        "police",
        "nrm",
        "status_decision",
        "urgent",
        ("identity", "exploitation"),
        "Found at a construction site during an inspection; the employer kept his wages.",
        300,
        (("send", 298), ("accept", 290), ("decide", 150)),
        text="An unpaid-wages dispute; no recruitment by deception or control over movement.",
        outcome="not_recognised",
        reason_code="insufficient_indicators",
    ),
    # Accepted a day ago: past its 24 hours, still waiting for the decision.
    DemoReferral(
        "ngo",
        "nrm",
        "status_decision",
        "urgent",
        ("identity", "exploitation"),
        "Presumed victim of forced labour in agriculture; wishes to stay for the proceedings.",
        31,
        (("send", 30), ("accept", 26)),
    ),
    DemoReferral(
        "police",
        "nrm",
        "status_decision",
        "urgent",
        ("identity", "exploitation"),
        "Witness in an investigation of sexual exploitation; indicators noted at the interview.",
        7,
        (("send", 6), ("accept", 4)),
    ),
    # Newest: in the coordinator's list, waiting to be accepted.
    DemoReferral(
        "police",
        "nrm",
        "status_decision",
        "urgent",
        ("identity", "exploitation"),
        "Identified at the border with a forged work contract; needs the formal decision.",
        3,
        (("send", 2),),
    ),
)
DEMO_CONSENT_VERSION = "demo-2026-1"


def _ensure_referrals(users: dict[str, User]) -> tuple[int, int]:
    """Create the demo referrals (every state) and a transfer waiting for acceptance, once.

    Through the referral and supervision services, so receipts, transitions, timeline events,
    notifications and audit entries are the UI's; past moments go in as the services' clock.
    Skipped when the demo agencies have referred before (the set is loaded once) or when
    there are not enough open cases. Returns (referrals, transfers) created.
    """
    from casework.models import Case, CaseStatus
    from referrals.models import Referral

    senders = {demo.sender for demo in DEMO_REFERRALS}
    agency_ids = [users[key].agency_id for key in senders]
    # Status-decision requests are a set of their own (_ensure_status_decisions).
    if db.session.scalar(
        select(func.count(Referral.id)).where(
            Referral.sending_agency_id.in_(agency_ids),
            Referral.service_type != _STATUS_DECISION,
        )
    ):
        return 0, 0
    # Open adult cases of each referring agency, oldest reference first: each referral gets
    # its own case, and the transfer the next one.
    needed = {key: sum(demo.sender == key for demo in DEMO_REFERRALS) for key in senders}
    needed["ngo"] += 1
    cases: dict[str, list] = {}
    for key, count in needed.items():
        rows = db.session.scalars(
            select(Case)
            .where(
                Case.owner_agency_id == users[key].agency_id,
                Case.status == CaseStatus.OPEN.value,
            )
            .order_by(Case.reference)
        )
        cases[key] = [case for case in rows if not case.is_minor][:count]
        if len(cases[key]) < count:
            return 0, 0
    now = utcnow()
    for demo in DEMO_REFERRALS:
        _demo_referral(demo, cases[demo.sender].pop(0), users, now)
    _demo_transfer(cases["ngo"].pop(0), users)
    return len(DEMO_REFERRALS), 1


_STATUS_DECISION = "status_decision"


def _ensure_status_decisions(users: dict[str, User]) -> int:
    """Create the demo requests for the coordinator's status decision, once; return how many.

    Through the same services as the other demo referrals, plus ``record_status_decision``,
    so the cases' NRM statuses, decisions, timeline, audit entries and notifications are the
    UI's. Each request gets an open adult case of its sender with a presumed status and no
    referral or transfer yet. Skipped when the demo agencies have asked the coordinator for a
    decision before, or when there are not enough such cases; a database loaded before this
    set existed gets it on its next load.
    """
    from casework.models import Case, CaseStatus, NrmStatus
    from casework.supervision import TransferRequest
    from referrals.models import Referral

    coordinator = db.session.scalar(select(User).where(User.email == "coordinator@nrm.demo"))
    if coordinator is None or not DEMO_STATUS_DECISIONS:
        return 0
    senders = {demo.sender for demo in DEMO_STATUS_DECISIONS}
    if db.session.scalar(
        select(func.count(Referral.id)).where(
            Referral.sending_agency_id.in_([users[key].agency_id for key in senders]),
            Referral.receiving_agency_id == coordinator.agency_id,
            Referral.service_type == _STATUS_DECISION,
        )
    ):
        return 0
    cases: dict[str, list] = {}
    for key in senders:
        count = sum(demo.sender == key for demo in DEMO_STATUS_DECISIONS)
        rows = db.session.scalars(
            select(Case)
            .where(
                Case.owner_agency_id == users[key].agency_id,
                Case.status == CaseStatus.OPEN.value,
                Case.nrm_status == NrmStatus.PRESUMED.value,
                Case.id.not_in(select(Referral.case_id)),
                Case.id.not_in(select(TransferRequest.case_id)),
            )
            .order_by(Case.reference)
        )
        cases[key] = [case for case in rows if not case.is_minor][:count]
        if len(cases[key]) < count:
            return 0
    parties = {**users, "nrm": coordinator}
    now = utcnow()
    for demo in DEMO_STATUS_DECISIONS:
        _demo_referral(demo, cases[demo.sender].pop(0), parties, now)
    return len(DEMO_STATUS_DECISIONS)


def _demo_referral(demo: DemoReferral, case, users: dict[str, User], now: datetime) -> None:
    from casework.casefile_services import ConsentDecision, record_consent
    from referrals import services
    from referrals.decisions import identification_day, record_status_decision
    from referrals.workflow import Action

    sender, receiver = users[demo.sender], users[demo.receiver]
    created = now - timedelta(hours=demo.created_hours_ago)
    consent = ConsentDecision("given", created.date(), "written", DEMO_CONSENT_VERSION)
    record_consent(sender, case, "referral", consent, agency_id=receiver.agency_id)
    referral = services.create_referral(
        sender,
        case,
        receiving_agency=receiver.agency,
        service_type=demo.service_type,
        urgency=demo.urgency,
        reason=demo.reason,
        sections=demo.sections,
        now=created,
    )
    for action, hours_ago in demo.steps:
        at = now - timedelta(hours=hours_ago)
        if action == "send":
            services.send_referral(sender, referral, now=at)
        elif action == "accept":
            services.accept_referral(receiver, referral, now=at)
        elif action == "decline":
            services.decline_referral(receiver, referral, demo.text, now=at)
        elif action == "start":
            services.start_referral(receiver, referral, now=at)
            if demo.note and demo.steps[-1][0] == "start":
                # The receiver's internal note, which the sender never reads.
                services.add_service_note(receiver, referral, demo.note)
        elif action == "complete":
            if demo.note:
                services.add_service_note(receiver, referral, demo.note, shared_with_sender=True)
            services.complete_referral(receiver, referral, "service_provided", demo.text, now=at)
        elif action == "cancel":
            services.cancel_referral(sender, referral, demo.text, now=at)
        elif action == "decide":
            # The local day of that moment, and never before the person was identified.
            zone = ZoneInfo(current_app.config["BABEL_DEFAULT_TIMEZONE"])
            decided_on = max(at.astimezone(zone).date(), identification_day(case))
            record_status_decision(
                receiver, referral, demo.outcome, decided_on, demo.reason_code, demo.text, now=at
            )
        elif action == "expire":
            # Only this one: the overdue demo referral stays sent until a view or cron.
            due = referral.response_due_at
            services.transition(referral, Action.EXPIRE, None, now=due, changes={"closed_at": due})


def _demo_transfer(case, users: dict[str, User]) -> None:
    """Ask to move an NGO case to the shelter, approved by the NGO's supervisor: it waits
    for the shelter's supervisor to accept it."""
    from casework import supervision

    supervisor = db.session.scalar(select(User).where(User.email == "supervisor@ngo.demo"))
    shelter = users["shelter"].agency
    request = supervision.request_transfer(
        case, users["ngo"], shelter, "She will live at the shelter for months; it should lead."
    )
    supervision.approve_transfer(request, supervisor)


# Bulk generation -----------------------------------------------------------------------


class _PlainCase:
    """The values of a case being generated, for the case model's pure methods.

    ``blind_index_values`` and ``derive_coded_fields`` only read and set attributes; calling
    them on this stand-in keeps one definition of the blind indexes and derived codes
    without building an ORM object (and its instrumentation) per case.
    """

    __tablename__ = "cases"

    def __init__(self, values: dict[str, object]) -> None:
        self.__dict__.update(values)


@dataclass(frozen=True)
class _PlainKey:
    """A just-generated data key's columns, for ``encrypt_value``."""

    id: str
    kek_id: str
    wrapped: bytes
    created_at: datetime
    destroyed_at: None


class _BulkCaseWriter:
    """Write synthetic cases a batch at a time: one INSERT per table, one commit per batch.

    The rows are those ``open_case`` writes: the case under its own data key (every
    encrypted field), its coded fields (and derived ones), blind index rows, coded-list rows,
    the "opened" timeline event and the ``case.created`` audit entry (unlinked, as requests
    leave them). Duplicate detection is not run: demo people are invented independently.
    """

    def __init__(self, owners: dict[str, tuple[int, int, str]]) -> None:
        from casework import models

        self.owners = owners
        self.models = models
        self.case_table = models.Case.__table__
        self.columns = [column.name for column in self.case_table.columns]
        self.fields = encrypted_fields(models.Case)
        self.coded = _coded_field_names()
        self.code_lists = set(getattr(models, "CODE_LISTS", {}))
        self.recorded = {*self.fields, *self.coded, *self.code_lists}
        tables = db.metadata.tables
        self.code_table = tables.get("case_codes")
        self.event_table = tables.get("case_events")
        for name in ("blind_index_values", "derive_coded_fields", "age_at_identification"):
            if hasattr(models.Case, name):
                setattr(_PlainCase, name, getattr(models.Case, name))
        self.timezone = ZoneInfo(current_app.config["BABEL_DEFAULT_TIMEZONE"])
        self.ring = current_keyring()

    def write(self, people: list[tuple[str, dict[str, object], bool]]) -> int:
        """Insert one case per person and commit; return how many."""
        from casework.services import REFERENCE_ATTEMPTS, ReferenceExhausted

        started = utcnow()
        rows: dict[str, list[dict]] = {"keys": [], "cases": [], "indexes": [], "codes": []}
        rows.update(events=[], entries=[])
        for number, (agency_key, person, _female) in enumerate(people):
            # Distinct times keep the list's (created_at, id) order the insertion order.
            self._add_rows(rows, agency_key, person, self._opened_at(person, started, number))
        by_year: dict[int, list[dict]] = {}
        for case in rows["cases"]:
            by_year.setdefault(case["created_at"].astimezone(self.timezone).year, []).append(case)
        try:
            for _attempt in range(REFERENCE_ATTEMPTS):
                for year, cases in by_year.items():
                    self._number(cases, year)
                try:
                    self._insert(rows)
                    db.session.commit()
                except IntegrityError as error:
                    db.session.rollback()
                    from casework.services import is_reference_clash

                    # Someone opened a case meanwhile and took a reference: allocate again.
                    if not is_reference_clash(error):
                        raise
                    continue
                return len(rows["cases"])
        finally:
            # encrypt_value caches each data key's cipher in g for the app context, which a
            # CLI run keeps for all its batches: drop this batch's keys.
            g.pop(crypto_cipher_cache, None)
        raise ReferenceExhausted("could not allocate case references: too many concurrent inserts")

    def _opened_at(self, person: dict, started: datetime, number: int) -> datetime:
        """When the synthetic case was opened: on its identification day, as intake is.

        Opening a million cases "now" would put them all under this year's references, of
        which there are only a million; opening each on its own day spreads them over years.
        """
        identified = person.get("identified_on")
        if not isinstance(identified, date):
            return started + timedelta(microseconds=number)
        local = datetime.combine(identified, time(9), self.timezone) + timedelta(
            seconds=number % 28800, microseconds=number
        )
        return min(local.astimezone(UTC), started + timedelta(microseconds=number))

    def _add_rows(self, rows, agency_key: str, person: dict, created_at: datetime) -> None:
        agency_id, user_id, agency_type = self.owners[agency_key]
        case_id = new_uuid()
        generated = DataKey.generate(self.ring)
        key_row = {
            "id": generated.id,
            "kek_id": generated.kek_id,
            "wrapped": generated.wrapped,
            "created_at": generated.created_at,
        }
        rows["keys"].append(key_row)
        # encrypt_value only reads these attributes; a plain object spares the ORM's
        # instrumented attribute access on each of the case's fields.
        data_key = _PlainKey(**key_row, destroyed_at=None)
        case = dict.fromkeys(self.columns)
        case.update(
            id=case_id,
            owner_agency_id=agency_id,
            assigned_user_id=user_id,
            status="open",
            version=1,
            data_key_id=data_key.id,
            created_at=created_at,
            updated_at=created_at,
        )
        if "identifying_agency_type" in case:
            case["identifying_agency_type"] = agency_type
        if "interpreter_needed" in case:
            case["interpreter_needed"] = False
        if "nrm_status" in case:
            case["nrm_status"] = _column_default(self.case_table.c.nrm_status)
        case.update({name: person[name] for name in self.coded if name in person})
        plain = _PlainCase({**case, **{name: person.get(name) for name in self.fields}})
        if hasattr(plain, "derive_coded_fields"):
            plain.derive_coded_fields()
            case.update({name: getattr(plain, name) for name in self.columns})
        for name, encrypted in self.fields.items():
            value = person.get(name)
            if isinstance(value, date):
                value = value.isoformat()  # how EncryptedField(kind="date") stores a date
            case[encrypted.column_name] = encrypt_value(
                data_key, value, table="cases", column=encrypted.column_name, row_id=case_id
            )
        rows["cases"].append(case)
        rows["indexes"].extend(
            {"case_id": case_id, "index_name": name, "value": value}
            for name, value in plain.blind_index_values().items()
        )
        for list_name in self.code_lists if self.code_table is not None else ():
            rows["codes"].extend(
                {"case_id": case_id, "list_name": list_name, "code": code}
                for code in sorted(set(person.get(list_name) or ()))
            )
        # What open_case's audit entry and timeline event name: the fields given a value.
        changed = sorted(
            name
            for name, value in person.items()
            if name in self.recorded and value not in (None, False, "", (), [])
        )
        if self.event_table is not None:
            rows["events"].append(
                {
                    "id": new_uuid(),
                    "case_id": case_id,
                    "occurred_at": created_at,
                    "kind": "case.opened",
                    "actor_user_id": user_id,
                    "actor_agency_id": agency_id,
                    "object_type": "case",
                    "object_id": case_id,
                    "field_names": ",".join(changed) or None,
                    "sequence": 0,
                }
            )
        rows["entries"].append(
            {
                "occurred_at": created_at,
                "user_id": user_id,
                "agency_id": agency_id,
                "action": "case.created",
                "object_type": "case",
                "object_id": case_id,
                "outcome": "allowed",
                "field_names": json.dumps(changed),
                "reason": None,
                "remote_addr": None,
            }
        )

    def _number(self, cases: list[dict], year: int) -> None:
        """Give the batch the next free references of the year, in order."""
        from casework.services import REFERENCE_DIGITS, ReferenceExhausted, next_reference

        first = next_reference(year)
        prefix, start = first[:-REFERENCE_DIGITS], int(first[-REFERENCE_DIGITS:])
        if start + len(cases) > 10**REFERENCE_DIGITS:
            raise ReferenceExhausted(f"no reference numbers left for {year}")
        for number, case in enumerate(cases, start):
            case["reference"] = f"{prefix}{number:0{REFERENCE_DIGITS}d}"

    def _insert(self, rows: dict[str, list[dict]]) -> None:
        from core.audit import AuditEntry

        # Parents first: the foreign keys are checked row by row.
        inserts = (
            (DataKey.__table__, rows["keys"]),
            (self.case_table, rows["cases"]),
            (self.models.CaseBlindIndex.__table__, rows["indexes"]),
            (self.code_table, rows["codes"]),
            (self.event_table, rows["events"]),
            (AuditEntry.__table__, rows["entries"]),
        )
        connection = db.session.connection()
        copy = connection.dialect.name == "postgresql"
        for table, values in inserts:
            if table is not None and values:
                if copy:
                    _copy_rows(connection, table, values)
                else:
                    db.session.execute(table.insert(), values)


def _copy_rows(connection, table, rows: list[dict]) -> None:
    """Insert rows with PostgreSQL's COPY, in the session's transaction (like executemany).

    Every row carries the same keys, and every column with a Python-side default is among
    them (COPY applies only server defaults). Values go through the columns' bind
    processing (UTCDateTime's check and conversion), as an INSERT would.

    :raises IntegrityError: wrapping the driver's error, as an INSERT would raise it.
    """
    import psycopg

    names = list(rows[0])
    columns = [table.c[name] for name in names]
    missing = [
        column.name
        for column in table.columns
        if column.default is not None and column.name not in rows[0]
    ]
    if missing:
        raise ValueError(f"COPY into {table.name}: no value for {', '.join(missing)}")
    dialect = connection.dialect
    processors = [
        (position, processor)
        for position, column in enumerate(columns)
        if (processor := column.type._cached_bind_processor(dialect)) is not None
    ]
    quote = dialect.identifier_preparer.quote
    statement = (
        f"COPY {dialect.identifier_preparer.format_table(table)}"
        f" ({', '.join(quote(name) for name in names)}) FROM STDIN"
    )
    cursor = connection.connection.dbapi_connection.cursor()
    try:
        with cursor.copy(statement) as copy:
            for row in rows:
                values = [row[name] for name in names]
                for position, processor in processors:
                    values[position] = processor(values[position])
                copy.write_row(values)
    except psycopg.IntegrityError as error:
        raise IntegrityError(statement, None, error) from error
    finally:
        cursor.close()


def _coded_field_names() -> tuple[str, ...]:
    """Return the single-valued coded fields a caseworker types (casework.services)."""
    from casework import services

    return tuple(getattr(services, "CODED_FIELDS", ()))


def _column_default(column) -> object:
    default = column.default
    return default.arg if default is not None and not callable(default.arg) else None


# Synthetic people ----------------------------------------------------------------------

# Locales of the synthetic names, with their share: Azerbaijani, Russian, English.
_LOCALES = (("az_AZ", 6), ("ru_RU", 3), ("en_US", 1))

_RECRUITMENT = (
    "Answered a social media advertisement for work as a waitress abroad.",
    "A relative's acquaintance offered a job at a construction site and paid for the ticket.",
    "Recruited by an agency promising seasonal agricultural work with accommodation.",
    "Met a man online who proposed marriage and arranged the journey.",
    "Offered work as a domestic helper by a neighbour who knew the employer.",
    "Promised a job in a hotel; the employment contract was never shown.",
)
_CONTROL = (
    "The passport was taken on arrival 'for registration' and never returned.",
    "Told to repay a debt for travel, housing and food that kept growing.",
    "Not allowed to leave the premises alone; phone confiscated.",
    "Threatened that the family at home would be harmed.",
    "Wages withheld for months; paid only small amounts in cash.",
    "Moved between apartments every few weeks.",
)
_IDENTIFICATION = (
    "Identified during a joint labour inspection.",
    "Called the helpline from a borrowed phone.",
    "Referred by a hospital emergency department.",
    "Came to the office with a friend after escaping.",
    "Identified at the border crossing during a document check.",
    "Referred by the consular section after asking for a travel document.",
)


def synthetic_people(
    count: int, *, seed: int = DEMO_SEED, skip: int = 0
) -> Iterator[tuple[str, dict[str, object]]]:
    """Yield ``(agency key, person fields)`` for ``count`` synthetic people, deterministically.

    The same seed always gives the same people in the same order; ``skip`` drops the first
    ones (after generating them, so the rest stay the same).
    """
    fake = Faker([locale for locale, _weight in _LOCALES])
    fake.seed_instance(seed)
    people = _people(count, random.Random(seed), lambda locale, _rng: fake[locale])  # noqa: S311
    for number, (agency_key, person, _female) in enumerate(people):
        if number >= skip:
            yield agency_key, person


def pooled_people(count: int, *, seed: int) -> Iterator[tuple[str, dict[str, object], bool]]:
    """Yield ``(agency key, person fields, female)`` like synthetic_people, much faster.

    Names and addresses are drawn from pools Faker fills once per call (a Faker call per
    field costs more than encrypting the whole case); the rest is the same generator.
    """
    rng = random.Random(seed)  # noqa: S311 - reproducible synthetic data, not secrets
    pools = {locale: _NamePool(locale, seed) for locale, _weight in _LOCALES}
    return _people(count, rng, lambda locale, rng: pools[locale].bind(rng))


def _people(count: int, rng: random.Random, faker_for: Callable) -> Iterator[tuple]:
    locales = [locale for locale, _weight in _LOCALES]
    locale_weights = [weight for _locale, weight in _LOCALES]
    holders = _case_holders()
    holder_weights = [agency.case_weight for agency in holders]
    # The intake's other fields come from a second stream, so adding one never changes
    # the people of a seed (an interrupted demo load resumes with the same ones).
    extra_rng = random.Random(rng.random())  # noqa: S311 - synthetic data, not secrets
    codes = _Vocabulary()
    for _number in range(count):
        locale = rng.choices(locales, locale_weights)[0]
        agency = rng.choices(holders, holder_weights)[0]
        person, female = _synthetic_person(faker_for(locale, rng), locale, rng)
        person.update(_intake_fields(person, locale, female, extra_rng, codes))
        yield agency.key, person, female


class _NamePool:
    """Faker's names and addresses for one locale, generated once and then drawn at random."""

    SIZE = 500

    def __init__(self, locale: str, seed: int) -> None:
        fake = Faker(locale)
        fake.seed_instance(seed)
        size = range(self.SIZE)
        self.female_given = [fake.first_name_female() for _ in size]
        self.female_family = [fake.last_name_female() for _ in size]
        self.male_given = [fake.first_name_male() for _ in size]
        self.male_family = [fake.last_name_male() for _ in size]
        self.addresses = [fake.address().replace("\n", ", ") for _ in size]
        self.rng = random.Random(seed)  # noqa: S311

    def bind(self, rng: random.Random) -> _NamePool:
        self.rng = rng
        return self

    # The few Faker methods _synthetic_person calls.
    def first_name_female(self) -> str:
        return self.rng.choice(self.female_given)

    def last_name_female(self) -> str:
        return self.rng.choice(self.female_family)

    def first_name_male(self) -> str:
        return self.rng.choice(self.male_given)

    def last_name_male(self) -> str:
        return self.rng.choice(self.male_family)

    def address(self) -> str:
        return self.rng.choice(self.addresses)


def _synthetic_person(fake, locale: str, rng: random.Random) -> tuple[dict[str, object], bool]:
    female = rng.random() < 0.7
    if female:
        given, family = fake.first_name_female(), fake.last_name_female()
    else:
        given, family = fake.first_name_male(), fake.last_name_male()
    age_days = rng.randint(12 * 365, 55 * 365)
    person = {
        "given_name": given,
        "family_name": family,
        "aliases": fake.first_name_female() if female and rng.random() < 0.2 else None,
        "date_of_birth": (
            _AGE_REFERENCE_DAY - timedelta(days=age_days) if rng.random() < 0.9 else None
        ),
        "phone": _phone(locale, rng) if rng.random() < 0.75 else None,
        "document_number": _document_number(locale, rng) if rng.random() < 0.7 else None,
        "address": fake.address().replace("\n", ", ") if rng.random() < 0.6 else None,
        "circumstances": " ".join(
            (rng.choice(_RECRUITMENT), rng.choice(_CONTROL), rng.choice(_IDENTIFICATION))
        ),
    }
    return person, female


# Intake fields beyond the person's identity: more encrypted text, coded fields (reference
# list codes) and multi-valued codes. Only the codes the reference lists hold are used, so
# the values stay valid while the lists are edited.
_CITIZENSHIP_SHARES = {
    "az_AZ": {"AZ": 90, "GE": 3, "RU": 3, "TR": 2, "IR": 2},
    "ru_RU": {"RU": 40, "UZ": 15, "TJ": 12, "KG": 10, "UA": 10, "KZ": 8, "AZ": 5},
    "en_US": {"PH": 20, "IN": 20, "NP": 20, "BD": 15, "LK": 10, "NG": 10, "US": 5},
}
_DESTINATIONS = {"AE": 30, "TR": 25, "RU": 20, "AZ": 15, "IR": 5, "GE": 5}
_PLACES_OF_BIRTH = {
    "az_AZ": ("Bakı", "Gəncə", "Sumqayıt", "Lənkəran", "Şəki", "Mingəçevir", "Quba"),
    "ru_RU": ("Москва", "Ташкент", "Душанбе", "Бишкек", "Самара", "Астрахань", "Дербент"),
    "en_US": ("Manila", "Kathmandu", "Dhaka", "Colombo", "Lagos", "Chennai"),
}
_LANGUAGES_SPOKEN = {
    "az_AZ": ("Azerbaijani", "Azerbaijani, Russian", "Azerbaijani, Turkish"),
    "ru_RU": ("Russian", "Russian, Uzbek", "Russian, Tajik", "Russian, Kyrgyz"),
    "en_US": ("English", "Tagalog, English", "Nepali", "Bengali", "Sinhala, English"),
}
_MEDICAL = (
    "No acute conditions reported.",
    "Untreated dental pain; referred to a dentist.",
    "Signs of exhaustion and weight loss; follow-up in two weeks.",
    "Anxiety and sleep problems; psychological support offered.",
    "Old fracture of the left wrist, healed without treatment.",
)
_REGION_SHARES = {"baku": 45, "absheron_khizi": 15, "ganja_dashkasan": 8}
_EXPLOITATION_SHARES = {"SexualExploitation": 40, "ForcedLabour": 40, "Servitude": 10}
# How cases reach Haven: NGO outreach, walk-ins and the hotline most often; returnees from
# the main destinations abroad come through consulates and partners there (_intake_channel).
_CHANNEL_SHARES = {
    "hotline": 25,
    "outreach": 20,
    "walk_in": 15,
    "police_operation": 10,
    "border_check": 6,
    "migration_service": 5,
    "labour_inspection": 4,
    "health_facility": 4,
    "online": 4,
    "consular_abroad": 2,
    "partner_abroad": 2,
    "other": 3,
}
_RETURNEE_CHANNEL_SHARES = {"consular_abroad": 45, "partner_abroad": 25, "hotline": 15}


class _Vocabulary:
    """The reference-list codes demo cases may use (none when casework has no lists)."""

    def __init__(self) -> None:
        try:
            from casework import reference
            from casework.models import CODE_LISTS
            from casework.services import CODED_FIELDS
        except ImportError:
            self.lists: dict[str, list[str]] = {}
            self.fields: dict[str, str | None] = {}
            return
        self.lists = {
            name: [item[0] for item in items] for name, items in reference.SEED_ITEMS.items()
        }
        self.lists["country"] = sorted(_all_citizenships())
        self.fields = {**CODED_FIELDS, **CODE_LISTS}

    def has(self, field_name: str) -> bool:
        return field_name in self.fields

    def pick(self, list_name: str, rng: random.Random, shares: dict[str, int] | None = None):
        codes = self.lists.get(list_name) or []
        if not codes:
            return None
        shares = shares or {}
        return rng.choices(codes, [shares.get(code, 1) for code in codes])[0]


def _all_citizenships() -> set[str]:
    return {code for shares in (*_CITIZENSHIP_SHARES.values(), _DESTINATIONS) for code in shares}


def _intake_fields(
    person: dict[str, object], locale: str, female: bool, rng: random.Random, codes: _Vocabulary
) -> dict[str, object]:
    """Return the intake's other fields for a synthetic person."""
    fields: dict[str, object] = {
        "place_of_birth": rng.choice(_PLACES_OF_BIRTH[locale]) if rng.random() < 0.6 else None,
        "languages_spoken": rng.choice(_LANGUAGES_SPOKEN[locale]),
        "document_type": (
            rng.choice(("passport", "national ID card")) if person["document_number"] else None
        ),
        "estimated_age": (
            str(rng.randint(14, 45))
            if person["date_of_birth"] is None and rng.random() < 0.7
            else None
        ),
        "identification_circumstances": rng.choice(_IDENTIFICATION),
        "recruitment_narrative": rng.choice(_RECRUITMENT) if rng.random() < 0.8 else None,
        "exploitation_narrative": rng.choice(_CONTROL) if rng.random() < 0.8 else None,
        "medical_notes": rng.choice(_MEDICAL) if rng.random() < 0.4 else None,
    }
    if not codes.fields:
        return fields
    citizenship = rng.choices(*zip(*_CITIZENSHIP_SHARES[locale].items(), strict=True))[0]
    coded = {
        "sex": "Feminine" if female else "Masculine",
        "citizenship": citizenship,
        "identification_region": codes.pick("region", rng, _REGION_SHARES),
        "identified_on": _AGE_REFERENCE_DAY - timedelta(days=rng.randint(0, 3 * 365)),
        "industry": codes.pick("industry", rng),
        "recruitment_type": codes.pick("recruitment_type", rng),
        "interpreter_needed": locale == "en_US" or rng.random() < 0.05,
        "exploitation_form": [codes.pick("exploitation_form", rng, _EXPLOITATION_SHARES)],
        "origin_country": [citizenship],
        "destination_country": [rng.choices(*zip(*_DESTINATIONS.items(), strict=True))[0]],
        "transit_country": ["GE"] if rng.random() < 0.1 else [],
        "means_of_control": [
            code for _ in range(rng.randint(1, 3)) if (code := codes.pick("means_of_control", rng))
        ],
    }
    # The channel comes from its own generator, seeded by the person, so adding it left the
    # other fields of every demo person as they were.
    seed = f"channel:{person.get('document_number')}:{coded['identified_on']}"
    channel_rng = random.Random(seed)  # noqa: S311 - synthetic data, not secrets
    destination = coded["destination_country"][0]
    # Citizens exploited in Turkey, the UAE or Russia often return through a consulate.
    returnee = (
        citizenship == "AZ" and destination in ("TR", "AE", "RU") and channel_rng.random() < 0.4
    )
    shares = _RETURNEE_CHANNEL_SHARES if returnee else _CHANNEL_SHARES
    coded["intake_channel"] = codes.pick("intake_channel", channel_rng, shares)
    fields.update({name: value for name, value in coded.items() if codes.has(name)})
    return fields


def _digits(rng: random.Random, count: int) -> str:
    return "".join(str(rng.randrange(10)) for _ in range(count))


def _phone(locale: str, rng: random.Random) -> str:
    if locale == "az_AZ":
        operator = rng.choice(("50", "51", "55", "70", "77", "99"))
        d = _digits(rng, 7)
        return f"+994 {operator} {d[:3]} {d[3:5]} {d[5:]}"
    if locale == "ru_RU":
        d = _digits(rng, 9)
        return f"+7 9{d[:2]} {d[2:5]}-{d[5:7]}-{d[7:]}"
    d = _digits(rng, 7)
    return f"+1 {rng.randint(201, 989)} {d[:3]}-{d[3:]}"


def _document_number(locale: str, rng: random.Random) -> str:
    if locale == "az_AZ":
        return rng.choice(("AA", "C")) + _digits(rng, 7 if rng.random() < 0.5 else 8)
    if locale == "ru_RU":
        return f"{_digits(rng, 4)} {_digits(rng, 6)}"
    return _digits(rng, 9)


# Command line --------------------------------------------------------------------------

demo_cli = AppGroup("demo", help="Demo agencies, accounts and cases (never in production).")


def _refuse_in_production() -> None:
    if is_production(current_app):
        raise click.ClickException("demo data is for development and test systems only")


@demo_cli.command("load")
@click.option(
    "--cases",
    "case_count",
    type=click.IntRange(0, 100_000),
    default=DEMO_CASE_COUNT,
    show_default=True,
    help="How many demo cases there should be.",
)
def load_command(case_count: int) -> None:
    """Create the demo agencies, accounts and cases that are missing (idempotent)."""
    _refuse_in_production()
    summary = load_demo_data(case_count)
    click.echo(f"demo data: {summary}")


@demo_cli.command("cases")
@click.option("--count", type=click.IntRange(1, 10_000_000), required=True)
@click.option("--batch-size", type=click.IntRange(1, 100_000), default=1000, show_default=True)
def cases_command(count: int, batch_size: int) -> None:
    """Open COUNT more synthetic cases across the demo agencies (for benchmarks)."""
    _refuse_in_production()
    opened = generate_cases(count, batch_size=batch_size)
    click.echo(f"{opened} demo cases opened")


@demo_cli.command("code")
@click.argument("email")
def code_command(email: str) -> None:
    """Print the current TOTP code of a demo account (for testers without a phone)."""
    _refuse_in_production()
    email = email.strip().lower()
    # Only the documented accounts, and only while they still use the public demo secret:
    # for any other account the code would be a real second factor.
    user = None
    if email in DEMO_EMAILS:
        user = db.session.scalar(select(User).where(User.email == email))
    if user is None or user.totp_secret != DEMO_TOTP_SECRET:
        raise click.ClickException(
            f"{email} is not a demo account; codes are shown for demo accounts only"
        )
    click.echo(pyotp.TOTP(DEMO_TOTP_SECRET).now())
