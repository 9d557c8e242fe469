"""The case file in the browser: a note, an attachment (upload, download, refusal), consent."""

from __future__ import annotations

import io
import re
import zipfile
from datetime import date

import pytest
from playwright.sync_api import Page, expect

from casework.reference import seed_reference_lists
from casework.services import open_case
from core.models import AgencyType, Role
from tests.browser.pages import sign_in
from tests.factories import make_agency, make_user

pytestmark = pytest.mark.browser

PDF_BYTES = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
GIVEN_NAME, FAMILY_NAME = "Nərmin", "Əliyeva"


@pytest.fixture
def leylas_case(db):
    """A caseworker of an NGO and an open case of her agency."""
    seed_reference_lists()
    agency = make_agency(AgencyType.NGO, name="Təmiz Dünya")
    leyla = make_user(agency, Role.CASEWORKER, email="leyla@example.org")
    case = open_case(
        leyla,
        {"given_name": GIVEN_NAME, "family_name": FAMILY_NAME, "date_of_birth": date(1998, 4, 2)},
    )
    db.session.commit()
    return {"leyla": leyla, "case_id": case.id, "reference": case.reference}



def open_section(page: Page, name: str) -> None:
    page.get_by_role("navigation", name="Case file").get_by_role("link", name=name).click()
    expect(page.get_by_role("heading", level=1, name=name)).to_be_visible()


@pytest.fixture
def on_the_case(page: Page, live_server, leylas_case) -> Page:
    sign_in(page, live_server, leylas_case["leyla"])
    page.goto(f"{live_server}/cases/{leylas_case['case_id']}")
    expect(
        page.get_by_role("heading", level=1, name=f"Case {leylas_case['reference']}")
    ).to_be_visible()
    return page


def test_a_note_is_listed_and_on_the_timeline(on_the_case: Page, leylas_case):
    page = on_the_case
    open_section(page, "Notes")
    expect(page.get_by_text("No notes yet.")).to_be_visible()

    page.get_by_label("Note", exact=True).fill("Met at the shelter; she wants to call her mother.")
    page.get_by_role("button", name="Add note").click()

    expect(page.get_by_text("Note added.")).to_be_visible()
    expect(page.locator(".record-list li")).to_have_count(1)
    expect(page.locator(".record-list")).to_contain_text(
        "Met at the shelter; she wants to call her mother."
    )
    expect(page.locator(".record-list")).to_contain_text(leylas_case["leyla"].display_name)

    # Back on the case page, the timeline has the note as its newest event.
    page.get_by_role("navigation", name="Case file").get_by_role("link", name="Summary").click()
    timeline = page.get_by_role("region", name="Timeline")
    expect(timeline.locator(".timeline__event").first).to_contain_text("Note added")
    expect(timeline).to_contain_text("Case opened")


def test_an_attachment_is_uploaded_downloaded_and_a_disguised_file_refused(
    on_the_case: Page, leylas_case, tmp_path
):
    page = on_the_case
    reference = leylas_case["reference"]
    statement = tmp_path / f"{FAMILY_NAME} statement.pdf"
    statement.write_bytes(PDF_BYTES)

    open_section(page, "Attachments")
    expect(page.get_by_text("No attachments yet.")).to_be_visible()
    page.get_by_label("File", exact=True).set_input_files(statement)
    page.get_by_label("Description").fill("Signed statement")
    page.get_by_role("button", name="Upload").click()

    expect(page.get_by_text("Attachment uploaded.")).to_be_visible()
    rows = page.get_by_role("table").locator("tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Signed statement")
    link = rows.first.get_by_role("link", name=statement.name)
    expect(link).to_be_visible()

    # The download is named after the reference and number only, and is the same file.
    with page.expect_download() as download_info:
        link.click()
    download = download_info.value
    name = download.suggested_filename
    assert re.fullmatch(r"HVN-\d{4}-\d{6}-attachment-1\.pdf", name), name
    assert name == f"{reference}-attachment-1.pdf"
    for personal in (GIVEN_NAME, FAMILY_NAME, "statement", "Signed"):
        assert personal.lower() not in name.lower()
    with open(download.path(), "rb") as downloaded:
        assert downloaded.read() == PDF_BYTES

    # A ZIP holding an executable, and a bare executable, both named .pdf: refused by
    # content, the typed description kept, nothing added to the list.
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("setup.exe", b"MZ\x90\x00\x03\x00\x00\x00" + b"\x00" * 64)
    disguised = {
        "invoice.pdf": archive.getvalue(),
        "report.pdf": b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" * 8,
    }
    for filename, content in disguised.items():
        bad = tmp_path / filename
        bad.write_bytes(content)
        page.get_by_label("File", exact=True).set_input_files(bad)
        page.get_by_label("Description").fill(f"Travel documents ({filename})")
        page.get_by_role("button", name="Upload").click()

        expect(page.get_by_role("alert")).to_contain_text(
            re.compile(r"accepts PDF, PNG, JPEG, DOCX, XLSX, ODT and plain text files only")
        )
        expect(page.get_by_label("Description")).to_have_value(f"Travel documents ({filename})")
        expect(page.get_by_role("table").locator("tbody tr")).to_have_count(1)
        expect(page.get_by_role("table")).not_to_contain_text(filename)


def test_consent_given_then_withdrawn_keeps_both_in_the_history(on_the_case: Page):
    page = on_the_case
    open_section(page, "Consent")
    history = page.get_by_role("region", name="History")
    expect(history).to_contain_text("No consent recorded yet.")

    page.get_by_label("Purpose", exact=True).select_option(label="Processing of personal data")
    page.get_by_label("Given", exact=True).check()
    page.get_by_label("In writing").check()
    page.get_by_role("button", name="Record decision").click()

    expect(page.get_by_text("Consent recorded.")).to_be_visible()
    in_force = page.get_by_role("region", name="Decisions in force").locator("tbody tr")
    expect(in_force).to_have_count(1)
    expect(in_force.first).to_contain_text("Processing of personal data")
    expect(in_force.first).to_contain_text("Given")

    in_force.first.get_by_role("link", name="Withdraw").click()
    expect(page.get_by_role("heading", name=re.compile("Withdraw consent"))).to_be_visible()
    page.get_by_label("In writing").check()
    page.get_by_role("button", name="Withdraw consent").click()

    expect(page.get_by_text("Consent withdrawn.")).to_be_visible()
    in_force = page.get_by_role("region", name="Decisions in force").locator("tbody tr")
    expect(in_force).to_have_count(1)
    expect(in_force.first).to_contain_text("Withdrawn")
    expect(in_force.first.get_by_role("link", name="Withdraw")).to_have_count(0)

    rows = page.get_by_role("region", name="History").locator("tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.filter(has_text="Withdrawn")).to_have_count(1)
    expect(rows.filter(has_text="Given")).to_have_count(1)
    for row in (rows.nth(0), rows.nth(1)):
        expect(row).to_contain_text("Processing of personal data")
