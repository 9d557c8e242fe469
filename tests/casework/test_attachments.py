"""Attachments: type checked by content, size limit, encrypted storage, audited downloads."""

from __future__ import annotations

import io
import json
import zipfile

import pytest
from sqlalchemy import inspect, select, text
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from casework.casefile import Attachment
from casework.casefile_services import sniff_file_type
from casework.services import open_case
from core.crypto import DecryptionError
from tests.casework.test_casefile import (
    PDF,
    assert_no_plaintext,
    audit_entries,
    build_world,
    client_for,
    raw_dump,
)

SECRET_PDF = PDF + "% Testimony of Zeynəb about the Dubai recruiter\n".encode()


@pytest.fixture
def world(app, db):
    return build_world(app, db)


def upload(client, world, filename: str, content: bytes, **fields):
    return client.post_form(
        f"/cases/{world['case_id']}/attachments",
        {"file": (io.BytesIO(content), filename), **fields},
        content_type="multipart/form-data",
    )


def zipped(*names: str, mimetype: bytes | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        if mimetype is not None:
            archive.writestr("mimetype", mimetype)
        for name in names:
            archive.writestr(name, "<x/>")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (PDF, "application/pdf"),
        (b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", "image/png"),
        (b"\xff\xd8\xff\xe0\0\x10JFIF", "image/jpeg"),
        (zipped("[Content_Types].xml", "word/document.xml"), "wordprocessingml"),
        (zipped("[Content_Types].xml", "xl/workbook.xml"), "spreadsheetml"),
        (zipped("content.xml", mimetype=b"application/vnd.oasis.opendocument.text"), "opendoc"),
        ("Plain text, Azərbaycan dili\n".encode(), "text/plain"),
        (b"MZ\x90\0\x03\0\0\0\x04\0\0\0\xff\xff", None),
        (b"GIF89a\x01\0\x01\0", None),
        (zipped("evil.exe"), None),
        (b"\0\0\0\0binary", None),
    ],
)
def test_it_tells_file_types_by_content(content, expected):
    kind = sniff_file_type(content)
    if expected is None:
        assert kind is None
    else:
        assert expected in kind.content_type


def test_it_stores_an_upload_encrypted_and_lists_it_without_loading_content(app, db, world):
    client = client_for(app, world["alice"])
    response = upload(client, world, "Zeynəb-statement.pdf", SECRET_PDF, description="Statement")
    assert response.status_code == 302
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Zeynəb-statement.pdf" in page
    assert_no_plaintext(
        raw_dump(db, "case_attachments"), "Zeynəb", "statement.pdf", "Dubai recruiter", "%PDF"
    )
    entries = audit_entries(db, "attachment.added")
    assert len(entries) == 2  # the fixture's and this one
    assert set(json.loads(entries[-1].field_names)) >= {"content", "original_filename"}
    db.session.expire_all()
    rows = list(db.session.scalars(select(Attachment)))
    assert all("_content_enc" in inspect(row).unloaded for row in rows)


def test_an_exe_renamed_pdf_is_refused(app, db, world):
    client = client_for(app, world["alice"])
    exe = b"MZ\x90\0\x03\0\0\0\x04\0\0\0\xff\xff\0\0" + b"\0" * 64
    response = upload(client, world, "invoice.pdf", exe, description="Keep me")
    assert response.status_code == 400
    assert "Keep me" in response.get_data(as_text=True)
    assert db.session.scalar(select(text("count(*)")).select_from(Attachment)) == 1


def test_a_pdf_named_as_text_is_refused(app, db, world):
    response = upload(client_for(app, world["alice"]), world, "notes.txt", PDF)
    assert response.status_code == 400
    assert "extension does not match" in response.get_data(as_text=True)


def test_a_file_over_the_limit_is_refused_with_a_translated_error(app, db, world):
    app.config["HAVEN_ATTACHMENT_MAX_BYTES"] = 1024
    try:
        world["alice"].language = "ru"
        db.session.commit()
        client = client_for(app, world["alice"])
        big = PDF + b"0" * 2048
        response = upload(client, world, "big.pdf", big, description="Typed description")
    finally:
        app.config["HAVEN_ATTACHMENT_MAX_BYTES"] = 20 * 1024 * 1024
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "Typed description" in page
    assert "MB" in page or "МБ" in page
    assert db.session.scalar(select(text("count(*)")).select_from(Attachment)) == 1


def test_the_default_limit_is_20_megabytes(app):
    from core.config import DEFAULTS

    assert DEFAULTS["HAVEN_ATTACHMENT_MAX_BYTES"] == 20 * 1024 * 1024


def test_a_download_names_no_person_is_never_cached_and_is_audited(app, db, world):
    client = client_for(app, world["bob"])
    response = client.get(f"/cases/{world['case_id']}/attachments/{world['attachment_id']}")
    assert response.status_code == 200
    assert response.data == PDF
    reference = db.session.execute(
        text("SELECT reference FROM cases WHERE id = :id"), {"id": world["case_id"]}
    ).scalar()
    disposition = response.headers["Content-Disposition"]
    assert disposition == f'attachment; filename="{reference}-attachment-1.pdf"'
    assert "passport" not in disposition
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Content-Type"] == "application/pdf"
    [entry] = audit_entries(db, "attachment.downloaded")
    assert entry.object_id == world["attachment_id"]
    assert entry.user_id == world["bob"].id


def test_content_moved_to_another_cases_row_fails_to_decrypt(app, db, world):
    client = client_for(app, world["alice"])
    other_id = open_case(world["alice"], {"given_name": "Other", "family_name": "Person"}).id
    db.session.commit()
    other_world = {**world, "case_id": other_id}
    assert upload(client, other_world, "other.txt", b"other case text\n").status_code == 302
    other = db.session.scalars(select(Attachment).where(Attachment.case_id == other_id)).one()
    other_id_attachment = other.id
    with db.engine.begin() as connection:
        stolen = connection.execute(
            text("SELECT content_enc FROM case_attachments WHERE id = :id"),
            {"id": world["attachment_id"]},
        ).scalar()
        connection.execute(
            text("UPDATE case_attachments SET content_enc = :c WHERE id = :id"),
            {"c": stolen, "id": other_id_attachment},
        )
    db.session.expire_all()
    moved = db.session.get(Attachment, other_id_attachment)
    with pytest.raises(DecryptionError):
        _ = moved.content


def upload_large(client, world, filename: str, content: bytes, **fields):
    """Post a large multipart body built in memory.

    The test client would spool a large body to a temporary file that it never closes (a
    ResourceWarning, an error here); a browser streams it the same way this does.
    """
    values = {
        "csrf_token": client.csrf_token(),
        "file": FileStorage(io.BytesIO(content), filename=filename),
        **fields,
    }
    boundary, body = encode_multipart(values)
    return client.post(
        f"/cases/{world['case_id']}/attachments",
        data=body,
        content_type=f"multipart/form-data; boundary={boundary}",
    )


def test_a_file_just_over_20_megabytes_gets_the_form_error_not_the_413_page(app, db, world):
    """Between the 20 MB attachment limit and the 21 MB request limit: a form error."""
    world["alice"].language = "ru"
    db.session.commit()
    client = client_for(app, world["alice"])
    big = PDF + b"0" * (20 * 1024 * 1024 + 512 * 1024)
    response = upload_large(client, world, "big.pdf", big, description="Typed description")
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "Размер файла не должен превышать 20 МБ." in page
    assert 'value="Typed description"' in page
    assert db.session.scalar(select(text("count(*)")).select_from(Attachment)) == 1


def test_a_request_over_the_hard_limit_gets_the_413_page_with_a_way_back(app, db, world):
    client = client_for(app, world["alice"])
    huge = PDF + b"0" * (app.config["MAX_CONTENT_LENGTH"] + 1024)
    response = upload_large(client, world, "huge.pdf", huge, description="Typed description")
    assert response.status_code == 413
    page = response.get_data(as_text=True)
    assert "at most 20 MB" in page
    assert "your browser keeps what you typed" in page
    assert f'href="/cases/{world["case_id"]}/attachments"' in page
    assert db.session.scalar(select(text("count(*)")).select_from(Attachment)) == 1
