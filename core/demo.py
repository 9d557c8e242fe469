"""Demo data: one fictional agency of every type, an account for every role, synthetic cases.

Everything here is invented. Agency and staff names sound Azerbaijani but belong to no real
organisation or person; case names, phones, documents and addresses come from Faker.

Every demo account signs in with the password ``DEMO_PASSWORD`` and the TOTP secret
``DEMO_TOTP_SECRET`` (add it to any authenticator app by hand, or run
``flask demo code EMAIL`` to print the current code). Both are public: demo data is for
development and test systems, and ``flask demo load`` refuses to run in production.

Layering note: ``core`` does not import blueprints, but demo cases must be opened through
the same service as the UI (``casework.services.open_case``), so that import happens lazily
inside the functions that need it.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta

import click
import pyotp
from faker import Faker
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy import func, select

from core.config import is_production
from core.db import db, utcnow
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
    DemoAgency("labour", "Abşeron Labour Inspectorate", AgencyType.LABOUR_INSPECTORATE),
    DemoAgency("border", "Yeniabad Border Checkpoint Service", AgencyType.BORDER_SERVICE),
    DemoAgency("migration", "Sumqayıt Migration Office", AgencyType.MIGRATION_SERVICE),
    DemoAgency(
        "child", "Gələcək Child Protection Centre", AgencyType.CHILD_PROTECTION, case_weight=2
    ),
    DemoAgency("legal", "Ədalət Legal Aid Bureau", AgencyType.LEGAL_AID),
    DemoAgency("hotline", "Səs Ver Helpline", AgencyType.HOTLINE, case_weight=2),
    DemoAgency("consular", "Consular Assistance Desk, Dubai", AgencyType.CONSULAR),
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
    skipped_users: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return (
            f"{self.agencies} agencies, {self.users} users and {self.cases} cases created"
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
    db.session.commit()
    return summary


def generate_cases(count: int, batch_size: int = 1000, *, seed: int | None = None) -> int:
    """Open ``count`` more synthetic cases across the demo agencies, committing per batch.

    For benchmarks. Makes sure the demo agencies and accounts exist first. Returns the
    number of cases opened.
    """
    summary = DemoSummary()
    agencies = _ensure_agencies(summary)
    users = _ensure_users(agencies, summary)
    db.session.commit()
    if seed is None:
        # Different people from the demo set and from earlier runs, still reproducible.
        seed = DEMO_SEED + _demo_case_count(agencies)
    user_ids = {key: user.id for key, user in users.items()}
    opened = 0
    while opened < count:
        size = min(batch_size, count - opened)
        opened += _open_cases(users, synthetic_people(size, seed=seed + opened))
        db.session.commit()
        # Keep memory flat over long runs: nothing from earlier batches is needed again.
        db.session.expunge_all()
        users = {key: db.session.get(User, user_id) for key, user_id in user_ids.items()}
    return opened


def _ensure_agencies(summary: DemoSummary) -> dict[str, Agency]:
    names = [agency.name for agency in DEMO_AGENCIES]
    found = {a.name: a for a in db.session.scalars(select(Agency).where(Agency.name.in_(names)))}
    agencies = {}
    for demo in DEMO_AGENCIES:
        agency = found.get(demo.name)
        if agency is None:
            agency = Agency(
                name=demo.name, type=demo.type.value, is_national_coordinator=demo.coordinator
            )
            db.session.add(agency)
            summary.agencies += 1
        agencies[demo.key] = agency
    db.session.flush()
    return agencies


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
    return [agency for agency in DEMO_AGENCIES if agency.holds_cases]


def _demo_case_count(agencies: dict[str, Agency]) -> int:
    from casework.models import Case

    ids = [agencies[agency.key].id for agency in _case_holders()]
    return db.session.scalar(
        select(func.count()).select_from(Case).where(Case.owner_agency_id.in_(ids))
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
    rng = random.Random(seed)  # noqa: S311 - reproducible synthetic data, not secrets
    fake = Faker([locale for locale, _weight in _LOCALES])
    fake.seed_instance(seed)
    locales = [locale for locale, _weight in _LOCALES]
    locale_weights = [weight for _locale, weight in _LOCALES]
    holders = _case_holders()
    holder_weights = [agency.case_weight for agency in holders]
    for number in range(count):
        locale = rng.choices(locales, locale_weights)[0]
        agency = rng.choices(holders, holder_weights)[0]
        person = _synthetic_person(fake[locale], locale, rng)
        if number >= skip:
            yield agency.key, person


def _synthetic_person(fake, locale: str, rng: random.Random) -> dict[str, object]:
    female = rng.random() < 0.7
    if female:
        given, family = fake.first_name_female(), fake.last_name_female()
    else:
        given, family = fake.first_name_male(), fake.last_name_male()
    age_days = rng.randint(12 * 365, 55 * 365)
    return {
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
