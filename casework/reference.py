"""Reference lists: the coded values of a case (sex, countries, exploitation forms...) and labels.

Codes
-----
Codes are short VARCHAR values stored in clear on cases, for statistics. Where the Human
Trafficking Case Data Standard 2.0 (HTCDS) has a picklist, its value is the code verbatim,
so an export maps one to one:

- ``sex``: HTCDS ``prs_Gender``, kept coarse (Feminine, Masculine, NonConforming,
  NonSpecifiedUnknown); the two transgender values are folded into the coarse ones on
  purpose: in small numbers they identify people.
- ``exploitation_form``: HTCDS ``vic_TypeOfExploitation``. DESIGN's list maps to it as
  sexual → SexualExploitation, forced labour → ForcedLabour, domestic servitude → Servitude,
  forced begging → ForcedBegging, forced marriage → ForcedMarriage, organ removal →
  OrganRemoval, child exploitation → ChildLabour, other → Other. HTCDS has no value for
  forced criminality: ``ForcedCriminality`` is Haven's own code, exported as ``Other``
  (``HTCDS_EXPORT``).
- ``industry``: ISIC Rev.4 section letters (A … U). HTCDS ``vic_ForcedLabourIndustry``
  values are the letter plus a name (``A_AgricultureForestryAndFishing``); the letter alone
  is the stable part.
- ``means_of_control``: HTCDS ``vic_MethodsOfControl``.
- ``recruitment_type``: HTCDS ``vic_MethodOfRecruitment``.
- ``country``: ISO 3166-1 alpha-2, names from Babel's CLDR data. Kept out: CLDR's regions
  (numeric codes), groupings (EU, EZ, UN, QO), pseudo-locales (XA, XB), the unknown region
  (ZZ) and the exceptionally reserved codes that are parts of other countries (AC, CP, CQ,
  DG, EA, IC, TA). Kosovo (XK, a user-assigned code in wide use, CLDR names it) is kept:
  people identified in Azerbaijan come from there, and leaving it out would force a wrong
  citizenship.
- ``region``: Azerbaijan's 14 economic regions (2021 division; Baku is one of them) plus
  ``abroad`` for people identified by a consulate or abroad. Haven's own codes.
- ``closure_reason``: Haven's own codes (HTCDS has the field, not the values).
- ``refusal_reason``: why a presumed victim did not consent to enter the NRM (anonymous
  refusals, ``casework.refusals``); Haven's own codes.
- ``intake_channel``: how the case reached Haven (hotline, walk-in, consular post...);
  Haven's own codes.

Labels are per language; an admin edits them and adds or deactivates items. An inactive
item is not offered in forms but still displayed on the cases that carry it.

Sorting
-------
PyICU is not available, so labels sort by ``collation_key``: Azerbaijani Latin order
(a b c ç d e ə f g ğ h x ı i j k q l m n o ö p r s ş t u ü v y z, with the Turkic dotted and
dotless i), Russian order (ё right after е), and for anything else the letter without its
diacritics. Good enough for lists of names; not a full UCA implementation.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

import click
from flask import g, has_app_context, has_request_context, request
from flask.cli import AppGroup
from flask_babel import get_locale
from flask_babel import lazy_gettext as _l
from sqlalchemy import Boolean, Integer, String, UniqueConstraint, select
from sqlalchemy.orm import Mapped, mapped_column

from core import audit
from core.db import db

LANGUAGES = ("en", "az", "ru")


class ReferenceItem(db.Model):
    """One coded value of one reference list, with its label in each language."""

    __tablename__ = "reference_items"
    __table_args__ = (UniqueConstraint("list_name", "code"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    list_name: Mapped[str] = mapped_column(String(40))
    code: Mapped[str] = mapped_column(String(40))
    label_en: Mapped[str] = mapped_column(String(200))
    label_az: Mapped[str] = mapped_column(String(200), default="")
    label_ru: Mapped[str] = mapped_column(String(200), default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    sort_order: Mapped[int] = mapped_column(Integer, default=0)

    def label(self, language: str | None = None) -> str:
        """Return the label in the language (the current one by default), else in English."""
        language = language or current_language()
        return getattr(self, f"label_{language}", None) or self.label_en

    def __repr__(self) -> str:
        return f"<ReferenceItem {self.list_name}:{self.code}>"


# The lists, their titles on the admin pages, and the seeded items (code, en, az, ru).
LIST_TITLES = {
    "sex": _l("Sex"),
    "country": _l("Countries"),
    "region": _l("Regions of identification"),
    "exploitation_form": _l("Forms of exploitation"),
    "industry": _l("Industries (ISIC sections)"),
    "means_of_control": _l("Means of control"),
    "recruitment_type": _l("Recruitment types"),
    "closure_reason": _l("Case closure reasons"),
    "refusal_reason": _l("Reasons for refusing the NRM"),
    "intake_channel": _l("Intake channels"),
}

SEED_ITEMS: dict[str, list[tuple[str, str, str, str]]] = {
    "sex": [
        ("Feminine", "Female", "Qadın", "Женский"),
        ("Masculine", "Male", "Kişi", "Мужской"),
        ("NonConforming", "Other", "Digər", "Другой"),
        ("NonSpecifiedUnknown", "Not known", "Məlum deyil", "Неизвестно"),
    ],
    "exploitation_form": [
        ("SexualExploitation", "Sexual exploitation", "Cinsi istismar", "Сексуальная эксплуатация"),
        ("ForcedLabour", "Forced labour", "Məcburi əmək", "Принудительный труд"),
        ("Servitude", "Domestic servitude", "Ev köləliyi", "Домашнее подневольное состояние"),
        (
            "ForcedBegging",
            "Forced begging",
            "Məcburi dilənçilik",
            "Принудительное попрошайничество",
        ),
        (
            "ForcedCriminality",
            "Forced criminality",
            "Məcburi cinayətkarlıq",
            "Принуждение к преступной деятельности",
        ),
        ("ForcedMarriage", "Forced marriage", "Məcburi nikah", "Принудительный брак"),
        ("OrganRemoval", "Organ removal", "Orqan götürülməsi", "Изъятие органов"),
        ("ChildLabour", "Child exploitation", "Uşaq istismarı", "Эксплуатация детей"),
        (
            "ForcedMilitaryByNonStateActors",
            "Forced military service (non-state actors)",
            "Qeyri-dövlət qruplarında məcburi hərbi xidmət",
            "Принудительная военная служба (негосударственные группы)",
        ),
        (
            "ForcedAdoption",
            "Forced adoption",
            "Məcburi övladlığa götürmə",
            "Принудительное усыновление",
        ),
        (
            "Surrogacy",
            "Forced surrogacy",
            "Məcburi surroqat analıq",
            "Принудительное суррогатное материнство",
        ),
        ("Other", "Other", "Digər", "Другое"),
    ],
    "industry": [
        (
            "A",
            "Agriculture, forestry and fishing",
            "Kənd təsərrüfatı, meşə təsərrüfatı və balıqçılıq",
            "Сельское, лесное и рыбное хозяйство",
        ),
        ("B", "Mining and quarrying", "Mədənçıxarma", "Добыча полезных ископаемых"),
        ("C", "Manufacturing", "Emal sənayesi", "Обрабатывающая промышленность"),
        (
            "D",
            "Electricity, gas, steam and air conditioning supply",
            "Elektrik enerjisi, qaz və buxar təchizatı",
            "Электроснабжение, подача газа и пара",
        ),
        (
            "E",
            "Water supply, sewerage and waste management",
            "Su təchizatı, tullantıların idarə edilməsi",
            "Водоснабжение, канализация, утилизация отходов",
        ),
        ("F", "Construction", "Tikinti", "Строительство"),
        (
            "G",
            "Wholesale and retail trade, repair of vehicles",
            "Topdan və pərakəndə ticarət, nəqliyyat vasitələrinin təmiri",
            "Оптовая и розничная торговля, ремонт автотранспорта",
        ),
        (
            "H",
            "Transportation and storage",
            "Nəqliyyat və anbar təsərrüfatı",
            "Транспорт и хранение",
        ),
        (
            "I",
            "Accommodation and food service",
            "Turistlərin yerləşdirilməsi və ictimai iaşə",
            "Гостиницы и общественное питание",
        ),
        ("J", "Information and communication", "İnformasiya və rabitə", "Информация и связь"),
        (
            "K",
            "Financial and insurance activities",
            "Maliyyə və sığorta fəaliyyəti",
            "Финансовая и страховая деятельность",
        ),
        (
            "L",
            "Real estate activities",
            "Daşınmaz əmlakla əməliyyatlar",
            "Операции с недвижимостью",
        ),
        (
            "M",
            "Professional, scientific and technical activities",
            "Peşə, elmi və texniki fəaliyyət",
            "Профессиональная, научная и техническая деятельность",
        ),
        (
            "N",
            "Administrative and support services",
            "İnzibati və yardımçı xidmətlər",
            "Административная и вспомогательная деятельность",
        ),
        (
            "O",
            "Public administration and defence",
            "Dövlət idarəetməsi və müdafiə",
            "Государственное управление и оборона",
        ),
        ("P", "Education", "Təhsil", "Образование"),
        (
            "Q",
            "Human health and social work",
            "Səhiyyə və sosial xidmətlər",
            "Здравоохранение и социальные услуги",
        ),
        (
            "R",
            "Arts, entertainment and recreation",
            "İncəsənət, əyləncə və istirahət",
            "Искусство, развлечения и отдых",
        ),
        ("S", "Other service activities", "Digər xidmətlər", "Прочие услуги"),
        (
            "T",
            "Households as employers (domestic work)",
            "Ev təsərrüfatlarında muzdlu iş (ev işi)",
            "Домашние хозяйства как работодатели (домашний труд)",
        ),
        (
            "U",
            "Extraterritorial organisations",
            "Ekstraterritorial təşkilatlar",
            "Экстерриториальные организации",
        ),
    ],
    "means_of_control": [
        ("PhysicalThreats", "Threats of violence", "Zorakılıq təhdidi", "Угрозы насилием"),
        (
            "ThreatsLawEnforcement",
            "Threats of reporting to the authorities",
            "Hüquq-mühafizə orqanlarına bildirmək təhdidi",
            "Угрозы сообщить властям",
        ),
        (
            "ThreatensChildrenFamily",
            "Threats against children or family",
            "Uşaqlara və ya ailəyə təhdid",
            "Угрозы детям или семье",
        ),
        ("DebtBondage", "Debt bondage", "Borc əsarəti", "Долговая кабала"),
        ("FalsePromises", "False promises", "Yalan vədlər", "Ложные обещания"),
        ("PhysicalAbuse", "Physical abuse", "Fiziki zorakılıq", "Физическое насилие"),
        ("SexualAbuse", "Sexual abuse", "Cinsi zorakılıq", "Сексуальное насилие"),
        ("TakesEarnings", "Takes earnings", "Qazancı əlindən alma", "Отбирание заработка"),
        (
            "RestrictsFinancialAccess",
            "Restricts access to money",
            "Pula çıxışı məhdudlaşdırma",
            "Ограничение доступа к деньгам",
        ),
        (
            "RestrictsMedicalCare",
            "Restricts medical care",
            "Tibbi yardımı məhdudlaşdırma",
            "Ограничение медицинской помощи",
        ),
        (
            "WithholdsNecessities",
            "Withholds necessities",
            "Zəruri ehtiyaclardan məhrum etmə",
            "Лишение самого необходимого",
        ),
        (
            "PsychologicalAbuse",
            "Psychological abuse",
            "Psixoloji zorakılıq",
            "Психологическое насилие",
        ),
        (
            "PsychoactiveSubstance",
            "Psychoactive substances",
            "Psixoaktiv maddələr",
            "Психоактивные вещества",
        ),
        (
            "ExcessiveWorkingHours",
            "Excessive working hours",
            "Həddindən artıq iş saatları",
            "Чрезмерная продолжительность работы",
        ),
        (
            "WithholdsDocuments",
            "Withholds documents",
            "Sənədləri əlindən alma",
            "Изъятие документов",
        ),
        ("Other", "Other", "Digər", "Другое"),
    ],
    "recruitment_type": [
        (
            "AtAPlaceOfBusiness",
            "At a place of business",
            "İş yerində (müəssisədə)",
            "В организации или на предприятии",
        ),
        (
            "AtAnEducationalInstitution",
            "At an educational institution",
            "Təhsil müəssisəsində",
            "В учебном заведении",
        ),
        ("AtWork", "At work", "İşdə", "На работе"),
        (
            "ThroughOnlineSocialNetworks",
            "Through online social networks",
            "Sosial şəbəkələr vasitəsilə",
            "Через социальные сети",
        ),
        (
            "ThroughAnOnlineAdvertisement",
            "Through an online advertisement",
            "İnternet elanı vasitəsilə",
            "Через объявление в интернете",
        ),
        (
            "ThroughATelevisionAdvert",
            "Through a television advert",
            "Televiziya reklamı vasitəsilə",
            "Через рекламу на телевидении",
        ),
        (
            "ThroughANewspaperAdvert",
            "Through a newspaper advert",
            "Qəzet elanı vasitəsilə",
            "Через объявление в газете",
        ),
        ("ThroughFamilyOrFamilyEvents", "Through family", "Ailə vasitəsilə", "Через семью"),
        (
            "ThroughFriendsOrSocialEvents",
            "Through friends or acquaintances",
            "Dostlar və ya tanışlar vasitəsilə",
            "Через друзей или знакомых",
        ),
        ("Other", "Other", "Digər", "Другое"),
    ],
    "region": [
        ("baku", "Baku", "Bakı", "Баку"),
        ("absheron_khizi", "Absheron-Khizi", "Abşeron-Xızı", "Абшерон-Хызы"),
        ("daghlig_shirvan", "Mountainous Shirvan", "Dağlıq Şirvan", "Нагорный Ширван"),
        ("ganja_dashkasan", "Ganja-Dashkasan", "Gəncə-Daşkəsən", "Гянджа-Дашкесан"),
        ("karabakh", "Karabakh", "Qarabağ", "Карабах"),
        ("gazakh_tovuz", "Gazakh-Tovuz", "Qazax-Tovuz", "Газах-Товуз"),
        ("guba_khachmaz", "Guba-Khachmaz", "Quba-Xaçmaz", "Губа-Хачмаз"),
        ("lankaran_astara", "Lankaran-Astara", "Lənkəran-Astara", "Ленкорань-Астара"),
        ("central_aran", "Central Aran", "Mərkəzi Aran", "Центральный Аран"),
        ("mil_mughan", "Mil-Mughan", "Mil-Muğan", "Миль-Муган"),
        ("shaki_zagatala", "Shaki-Zagatala", "Şəki-Zaqatala", "Шеки-Загатала"),
        ("east_zangezur", "East Zangezur", "Şərqi Zəngəzur", "Восточный Зангезур"),
        ("shirvan_salyan", "Shirvan-Salyan", "Şirvan-Salyan", "Ширван-Сальян"),
        ("nakhchivan", "Nakhchivan", "Naxçıvan", "Нахчыван"),
        ("abroad", "Outside Azerbaijan", "Azərbaycandan kənarda", "За пределами Азербайджана"),
    ],
    "refusal_reason": [
        (
            "fear_of_traffickers",
            "Fear of the traffickers",
            "İnsan alverçilərindən qorxu",
            "Страх перед торговцами людьми",
        ),
        (
            "distrust_of_authorities",
            "Distrust of the authorities",
            "Dövlət orqanlarına inamsızlıq",
            "Недоверие к властям",
        ),
        ("wants_to_go_home", "Wants to go home", "Evə qayıtmaq istəyir", "Хочет вернуться домой"),
        (
            "does_not_see_self_as_victim",
            "Does not see themselves as a victim",
            "Özünü qurban hesab etmir",
            "Не считает себя жертвой",
        ),
        ("family_pressure", "Pressure from the family", "Ailənin təzyiqi", "Давление семьи"),
        (
            "no_time_or_needs_work",
            "No time, or needs to keep working",
            "Vaxtı yoxdur və ya işləməlidir",
            "Нет времени или нужно работать",
        ),
        ("other", "Other", "Digər", "Другое"),
    ],
    "closure_reason": [
        ("services_completed", "Support completed", "Dəstək başa çatıb", "Поддержка завершена"),
        (
            "declined_services",
            "The person declined further support",
            "Şəxs dəstəkdən imtina edib",
            "Человек отказался от поддержки",
        ),
        ("lost_contact", "Contact lost", "Əlaqə itib", "Связь потеряна"),
        (
            "transferred",
            "Transferred to another agency",
            "Başqa quruma verilib",
            "Передано другой организации",
        ),
        (
            "returned_home",
            "Returned to the country of origin",
            "Mənşə ölkəsinə qayıdıb",
            "Вернулся в страну происхождения",
        ),
        (
            "not_a_victim",
            "Not a victim of trafficking",
            "İnsan alverinin qurbanı deyil",
            "Не является жертвой торговли людьми",
        ),
        (
            "duplicate",
            "Duplicate of another case",
            "Başqa işin təkrarıdır",
            "Дубликат другого дела",
        ),
        ("deceased", "Deceased", "Vəfat edib", "Умер"),
        ("other", "Other", "Digər", "Другое"),
    ],
    "intake_channel": [
        (
            "hotline",
            "Hotline or call centre",
            "Qaynar xətt və ya zəng mərkəzi",
            "Горячая линия или колл-центр",
        ),
        ("walk_in", "Walk-in", "Şəxsən müraciət", "Личное обращение"),
        ("outreach", "Outreach", "Səyyar iş (autrič)", "Аутрич (выездная работа)"),
        ("police_operation", "Police operation", "Polis əməliyyatı", "Полицейская операция"),
        ("border_check", "Border check", "Sərhəd yoxlaması", "Пограничный контроль"),
        ("migration_service", "Migration service", "Miqrasiya xidməti", "Миграционная служба"),
        ("labour_inspection", "Labour inspection", "Əmək müfəttişliyi", "Трудовая инспекция"),
        (
            "consular_abroad",
            "Consular post or labour attaché abroad",
            "Xaricdəki konsulluq və ya əmək attaşesi",
            "Консульство или трудовой атташе за рубежом",
        ),
        ("health_facility", "Health facility", "Tibb müəssisəsi", "Медицинское учреждение"),
        ("online", "Online or app", "Onlayn və ya tətbiq", "Онлайн или приложение"),
        (
            "partner_abroad",
            "Referral from a partner abroad",
            "Xaricdəki tərəfdaşın göndərişi",
            "Направление партнёра за рубежом",
        ),
        ("other", "Other", "Digər", "Другое"),
    ],
}

# Haven's own codes and the HTCDS value they are exported as.
HTCDS_EXPORT = {("exploitation_form", "ForcedCriminality"): "Other"}

# CLDR territory codes that are not countries (see the module docstring).
NOT_COUNTRIES = frozenset(
    {"EU", "EZ", "UN", "QO", "XA", "XB", "ZZ", "AC", "CP", "CQ", "DG", "EA", "IC", "TA"}
)


def current_language() -> str:
    """Return the language labels are shown in: the request's locale, else English."""
    try:
        language = str(get_locale() or "en").split("_")[0]
    except RuntimeError:  # outside a request
        language = "en"
    return language if language in LANGUAGES else "en"


# Sorting --------------------------------------------------------------------------------

_ALPHABETS = {
    "az": "abcçdeəfgğhxıijkqlmnoöprsştuüvyz",
    "ru": "абвгдеёжзийклмнопрстуфхцчшщъыьэюя",
}


def collation_key(text: str, language: str | None = None) -> tuple:
    """Return a sort key for the text in the language's alphabetical order (see module doc)."""
    language = language or current_language()
    if language == "az":
        # Turkic casing: I is the capital of ı, İ the capital of i.
        text = text.replace("I", "ı").replace("İ", "i")
    text = text.lower()
    alphabet = _ALPHABETS.get(language, "")
    key = []
    for char in text:
        position = alphabet.find(char)
        if position >= 0:
            key.append((0, position * 2))
            continue
        base = unicodedata.normalize("NFD", char)[0]
        position = alphabet.find(base)
        if position >= 0:
            # A letter with a diacritic the alphabet lacks sorts right after its base letter.
            key.append((0, position * 2 + 1))
        elif base.isalnum():
            # Letters of other scripts (Latin in a Russian list) come after the alphabet.
            key.append((1, ord(base)))
        else:
            # Spaces and punctuation sort before letters, as in most dictionaries.
            key.append((-1, ord(base)))
    return tuple(key)


# Reading the lists ------------------------------------------------------------------------


def items_of(list_name: str) -> list[ReferenceItem]:
    """Return every item of the list, active or not, in display order for the current language."""
    rows = db.session.scalars(
        select(ReferenceItem).where(ReferenceItem.list_name == list_name)
    ).all()
    language = current_language()
    return sorted(rows, key=lambda item: (item.sort_order, collation_key(item.label(language))))


@dataclass(frozen=True, slots=True)
class _Entry:
    """What pages need of an item: its code, label in the current language, state, position."""

    code: str
    label: str
    active: bool
    sort_order: int


class _Lists:
    """Reference list entries in one language, read as pages need them, for one request.

    Kept for one request at most (``_lists``): the lists are not personal data, but an admin
    may change them on another instance at any time, so nothing outlives the request.
    Whole lists are read one query each (forms); a page that only shows a few codes reads
    just their labels, all lists at once (``labels_for``).
    """

    def __init__(self, language: str) -> None:
        self.language = language
        self._entries: dict[str, list[_Entry]] = {}
        self._labels: dict[str, dict[str, str]] = {}
        self._sorted: dict[str, list[_Entry]] = {}
        # Labels of single codes read by labels_for, by (list name, code).
        self._some: dict[tuple[str, str], str] = {}

    def _columns(self):
        return (
            ReferenceItem.list_name,
            ReferenceItem.code,
            ReferenceItem.label_en,
            getattr(ReferenceItem, f"label_{self.language}"),
            ReferenceItem.active,
            ReferenceItem.sort_order,
        )

    def entries(self, list_name: str) -> list[_Entry]:
        entries = self._entries.get(list_name)
        if entries is None:
            query = select(*self._columns()).where(ReferenceItem.list_name == list_name)
            entries = self._entries[list_name] = [
                _Entry(code, label_here or label_en, active, sort_order)
                for _name, code, label_en, label_here, active, sort_order in db.session.execute(
                    query
                )
            ]
        return entries

    def labels(self, list_name: str) -> dict[str, str]:
        labels = self._labels.get(list_name)
        if labels is None:
            entries = self.entries(list_name)
            labels = self._labels[list_name] = {entry.code: entry.label for entry in entries}
        return labels

    def ordered(self, list_name: str) -> list[_Entry]:
        ordered = self._sorted.get(list_name)
        if ordered is None:
            language = self.language
            ordered = self._sorted[list_name] = sorted(
                self.entries(list_name),
                key=lambda entry: (entry.sort_order, collation_key(entry.label, language)),
            )
        return ordered

    def labels_for(self, wanted: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
        """Return the labels of these (list name, code) pairs; unknown codes are left out."""
        found: dict[tuple[str, str], str] = {}
        missing: dict[str, set[str]] = {}
        for list_name, code in wanted:
            if list_name in self._labels:
                if code in self._labels[list_name]:
                    found[list_name, code] = self._labels[list_name][code]
            elif (list_name, code) in self._some:
                found[list_name, code] = self._some[list_name, code]
            else:
                missing.setdefault(list_name, set()).add(code)
        if missing:
            # One statement shape whatever the pairs (so SQLAlchemy compiles it once); the
            # few items of another wanted list that share a wanted code are dropped here.
            codes = sorted({code for codes in missing.values() for code in codes})
            query = select(*self._columns()[:4]).where(
                ReferenceItem.list_name.in_(sorted(missing)), ReferenceItem.code.in_(codes)
            )
            for list_name, code, label_en, label_here in db.session.execute(query):
                if code in missing[list_name]:
                    label = self._some[list_name, code] = label_here or label_en
                    found[list_name, code] = label
        return found


# Where a request keeps its lists: (the request object, the lists). Keyed by the request
# because tests may run several requests inside one application context (one ``g``).
_G_LISTS = "haven_reference_lists"


def _lists() -> _Lists:
    """Return this request's lists, or fresh ones outside a request."""
    language = current_language()
    if not has_request_context():
        return _Lists(language)
    current = request._get_current_object()  # type: ignore[attr-defined]
    cached = g.get(_G_LISTS)
    if cached is not None and cached[0] is current and cached[1].language == language:
        return cached[1]
    lists = _Lists(language)
    setattr(g, _G_LISTS, (current, lists))
    return lists


def _forget_lists() -> None:
    """Drop this request's lists after a change, so the rest of the request sees it."""
    if has_app_context():
        g.pop(_G_LISTS, None)


def labels_for(wanted: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """Return {(list name, code): label in the current language} for the pairs given, in one
    query (codes no list has are left out)."""
    return _lists().labels_for(wanted)


def labels_of(list_name: str) -> dict[str, str]:
    """Return {code: label in the current language} for every item of the list."""
    return dict(_lists().labels(list_name))


def label_for(list_name: str, code: str | None) -> str | None:
    """Return the label of one code in the current language (the code itself if unknown)."""
    if code is None:
        return None
    return labels_for([(list_name, code)]).get((list_name, code), code)


def choices_for(list_name: str, keep: Iterable[str] = ()) -> list[tuple[str, str]]:
    """Return (code, label) choices: the active items, plus inactive ones in ``keep``.

    ``keep`` holds the codes a case already carries, so saving an old case never drops an
    item the admin deactivated since.
    """
    keep = set(keep)
    choices = []
    for item in _lists().ordered(list_name):
        if item.active:
            choices.append((item.code, item.label))
        elif item.code in keep:
            choices.append((item.code, str(_l("%(label)s (no longer in use)", label=item.label))))
    return choices


def is_valid_code(list_name: str, code: str) -> bool:
    """Return whether the code exists in the list (active or not)."""
    return (
        db.session.scalar(
            select(ReferenceItem.id).where(
                ReferenceItem.list_name == list_name, ReferenceItem.code == code
            )
        )
        is not None
    )


# Seeding ---------------------------------------------------------------------------------


def country_items() -> list[tuple[str, str, str, str]]:
    """Return (code, en, az, ru) for every country in Babel's CLDR data."""
    from babel import Locale

    names = {language: Locale(language).territories for language in LANGUAGES}
    codes = sorted(
        code
        for code in names["en"]
        if len(code) == 2 and code.isalpha() and code.isupper() and code not in NOT_COUNTRIES
    )
    return [
        (code, names["en"][code], names["az"].get(code, ""), names["ru"].get(code, ""))
        for code in codes
    ]


def seed_reference_lists() -> int:
    """Add the seeded items missing from the database; return how many were added.

    Idempotent: items already present (perhaps relabelled by an admin) are left alone.
    """
    existing = set(db.session.execute(select(ReferenceItem.list_name, ReferenceItem.code)).all())
    wanted = {**SEED_ITEMS, "country": country_items()}
    rows = []
    for list_name, items in wanted.items():
        # Countries sort by their label in each language; the other lists keep seed order.
        for position, (code, label_en, label_az, label_ru) in enumerate(items, start=1):
            if (list_name, code) in existing:
                continue
            rows.append(
                {
                    "list_name": list_name,
                    "code": code,
                    "label_en": label_en,
                    "label_az": label_az,
                    "label_ru": label_ru,
                    "active": True,
                    "sort_order": 0 if list_name == "country" else position,
                }
            )
    if rows:
        db.session.execute(ReferenceItem.__table__.insert(), rows)
        _forget_lists()
    return len(rows)


# Admin changes ---------------------------------------------------------------------------


class ReferenceListError(ValueError):
    """A reference list change that cannot be made (shown to the admin)."""


def add_reference_item(
    list_name: str, code: str, labels: dict[str, str], sort_order: int = 0, *, actor
) -> ReferenceItem:
    """Add an item to a list.

    :raises ReferenceListError: for an unknown list or a code the list already has.
    """
    if list_name not in LIST_TITLES:
        raise ReferenceListError(_l("There is no such list."))
    if is_valid_code(list_name, code):
        raise ReferenceListError(_l("This list already has an item with this code."))
    item = ReferenceItem(
        list_name=list_name,
        code=code,
        active=True,
        sort_order=sort_order,
        **{f"label_{language}": labels.get(language) or "" for language in LANGUAGES},
    )
    db.session.add(item)
    db.session.flush()
    _forget_lists()
    audit.record(
        "reference.item_added",
        object_type="reference_item",
        object_id=item.id,
        field_names=["code", "sort_order", *(f"label_{language}" for language in LANGUAGES)],
        user=actor,
    )
    return item


def update_reference_item(
    item: ReferenceItem, labels: dict[str, str], sort_order: int, *, actor
) -> list[str]:
    """Change an item's labels and position; return the names of the fields changed."""
    changed = []
    for language in LANGUAGES:
        name = f"label_{language}"
        value = labels.get(language) or ""
        if getattr(item, name) != value:
            setattr(item, name, value)
            changed.append(name)
    if item.sort_order != sort_order:
        item.sort_order = sort_order
        changed.append("sort_order")
    if changed:
        db.session.flush()
        _forget_lists()
        audit.record(
            "reference.item_updated",
            object_type="reference_item",
            object_id=item.id,
            field_names=changed,
            user=actor,
        )
    return changed


def set_reference_item_active(item: ReferenceItem, active: bool, *, actor) -> None:
    """Deactivate or reactivate an item (never delete: old cases still carry it)."""
    if item.active == active:
        return
    item.active = active
    db.session.flush()
    _forget_lists()
    audit.record(
        "reference.item_reactivated" if active else "reference.item_deactivated",
        object_type="reference_item",
        object_id=item.id,
        field_names=["active"],
        user=actor,
    )


# Command line ------------------------------------------------------------------------------


def seed_reference_data() -> tuple[int, int]:
    """Seed every reference list and the indicator checklist; return what was added."""
    from casework.casefile_services import seed_indicator_definitions
    from core.working_days import seed_public_holidays

    # Azerbaijan's fixed-date public holidays, this year and the next (idempotent too).
    seed_public_holidays()
    return seed_reference_lists(), seed_indicator_definitions()


reference_cli = AppGroup("reference", help="Reference lists of coded case values.")


@reference_cli.command("seed")
def seed_command() -> None:
    """Add the seeded reference list items and indicators that are missing (keeps edits)."""
    added, indicators = seed_reference_data()
    db.session.commit()
    click.echo(f"reference lists: {added} items added; indicator checklist: {indicators} added")
