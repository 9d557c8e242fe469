"""Notifications: the per-user notification rows, the kinds, and e-mail after commit.

A notification says *that* something happened (its kind), to *which* case or referral (the
non-identifying reference, e.g. ``HVN-2026-000123``) and *where* to look (a link path); it
never carries personal data: no names, no free text from cases. ``notify`` refuses a
reference or link that does not have the expected shape, so a caller cannot slip a name or
a search term into one. A notification never grants access: the linked page checks it.

Addressed to an agency (optionally only to users holding some roles), a notification is
fanned out to one row per user at creation, so read and unread are per user.

E-mail goes out through SMTP when ``HAVEN_SMTP_HOST`` is set, in the recipient's language,
holding only the kind's label, the reference and a link. Messages are prepared in
``notify`` (the database is still readable then) and queued on the database session;
they are sent only after that session's transaction commits, so an action that rolls back
never mails. A failing SMTP server is logged (without addresses or content) and never fails
the request: the in-app notification is there either way.
"""

from __future__ import annotations

import re
import smtplib
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

from flask import Flask, current_app, g, has_app_context
from flask_babel import force_locale
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import ForeignKey, Index, Integer, String, event, func, inspect, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from core.db import UTCDateTime, db, utcnow
from core.models import Agency, Role, User, UserRole

# Labels of notification kinds. Areas add theirs with register_notification_kind at import.
NOTIFICATION_KINDS: dict[str, Any] = {}

# A reference is an uppercase code such as HVN-2026-000123 or REF-2026-000012.
REFERENCE_PATTERN = re.compile(r"[A-Z][A-Z0-9]*(?:-[A-Z0-9]+)+")
# A same-site path without query string (query strings could carry search terms), with an
# optional fragment: "/cases/<uuid>", "/referrals/12#decision".
LINK_PATTERN = re.compile(r"/(?!/)[A-Za-z0-9/_.-]*(?:#[A-Za-z0-9_-]+)?")
MAX_REFERENCE_LENGTH = 32
MAX_LINK_LENGTH = 300
# Pending e-mails on a database session, sent once its transaction commits.
_PENDING_MAIL = "haven_pending_notification_mail"
TRUE_WORDS = frozenset({"1", "true", "yes", "on"})


def register_notification_kind(kind: str, label: Any) -> None:
    """Give a notification kind its (lazily translated) label, e.g. "New referral received"."""
    NOTIFICATION_KINDS[kind] = label


class Notification(db.Model):
    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_user_created", "user_id", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    # The agency and role it was addressed to, when it went to an agency rather than to
    # named users: a user who has moved to another agency no longer sees it.
    agency_id: Mapped[int | None] = mapped_column(ForeignKey("agencies.id", ondelete="CASCADE"))
    # Comma-separated role codes of the filter, when there was one.
    roles: Mapped[str | None] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(64))
    reference: Mapped[str] = mapped_column(String(MAX_REFERENCE_LENGTH))
    link: Mapped[str] = mapped_column(String(MAX_LINK_LENGTH))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @property
    def label(self) -> str:
        return str(NOTIFICATION_KINDS.get(self.kind, self.kind))

    @property
    def is_unread(self) -> bool:
        return self.read_at is None

    def __repr__(self) -> str:
        return f"<Notification {self.id} {self.kind}>"


# Services ---------------------------------------------------------------------------------


def notify(
    *,
    users: Iterable[User] | None = None,
    agency: Agency | None = None,
    roles: Iterable[Role | str] | None = None,
    kind: str,
    reference: str,
    link: str,
    now: datetime | None = None,
) -> list[Notification]:
    """Notify the given users and/or the active users of an agency (holding one of the roles).

    Adds one notification per recipient (each user once, inactive users skipped) and queues
    an e-mail for each when SMTP is configured, sent after the transaction commits. Flushes;
    never commits.

    :raises KeyError: for a kind nobody registered.
    :raises ValueError: for a reference or link of the wrong shape, an empty role filter or
        one without an agency, or no addressee at all.
    """
    if kind not in NOTIFICATION_KINDS:
        raise KeyError(f"unregistered notification kind {kind!r}")
    if not (len(reference) <= MAX_REFERENCE_LENGTH and REFERENCE_PATTERN.fullmatch(reference)):
        raise ValueError("a notification carries a reference code, nothing else")
    if not (len(link) <= MAX_LINK_LENGTH and LINK_PATTERN.fullmatch(link)):
        raise ValueError("a notification link is a same-site path without a query string")
    role_values = sorted({Role(role).value for role in roles}) if roles is not None else None
    if role_values is not None and (agency is None or not role_values):
        raise ValueError("a role filter needs an agency and at least one role")
    if users is None and agency is None:
        raise ValueError("notify whom? give users or an agency")

    # (user, addressed agency id, role filter) in a stable order, each user once.
    recipients: dict[int, tuple[User, int | None, str | None]] = {}
    for user in users or ():
        if user.active:
            recipients.setdefault(user.id, (user, None, None))
    if agency is not None:
        for user in _agency_users(agency, role_values):
            recipients.setdefault(user.id, (user, agency.id, ",".join(role_values or []) or None))

    created_at = now or utcnow()
    notifications = []
    for user, agency_id, role_filter in recipients.values():
        notification = Notification(
            user_id=user.id,
            agency_id=agency_id,
            roles=role_filter,
            kind=kind,
            reference=reference,
            link=link,
            created_at=created_at,
        )
        db.session.add(notification)
        notifications.append(notification)
    db.session.flush()
    if mail_configured():
        for notification, (user, _agency_id, _role) in zip(
            notifications, recipients.values(), strict=True
        ):
            if user.email and user.notify_by_email:
                _queue_mail(notification, compose_mail(user, kind, reference, link))
    return notifications


def _agency_users(agency: Agency, role_values: list[str] | None) -> list[User]:
    query = select(User).where(User.agency_id == agency.id, User.active.is_(True))
    if role_values:
        query = query.where(
            User.id.in_(select(UserRole.user_id).where(UserRole.role.in_(role_values)))
        )
    return list(db.session.scalars(query.order_by(User.id)))


def mark_notification_read(notification: Notification, *, now: datetime | None = None) -> bool:
    """Mark the notification read; return False when it already was. Never commits."""
    if notification.read_at is not None:
        return False
    notification.read_at = now or utcnow()
    db.session.flush()
    return True


def mark_all_notifications_read(user: User, *, now: datetime | None = None) -> int:
    """Mark every unread notification of the user read; return how many. Never commits."""
    from core.policy import visible_notifications

    ids = visible_notifications(user).where(Notification.read_at.is_(None))
    result = db.session.execute(
        update(Notification)
        .where(Notification.id.in_(ids.with_only_columns(Notification.id)))
        .values(read_at=now or utcnow())
        .execution_options(synchronize_session=False)
    )
    return result.rowcount


def set_email_preference(user: User, enabled: bool) -> None:
    """Turn the user's notification e-mails on or off. Never commits."""
    user.notify_by_email = enabled
    db.session.flush()


def unread_count(user: User) -> int:
    """Return how many notifications the user has not read (one COUNT query)."""
    from core.policy import visible_notifications

    scope = visible_notifications(user).where(Notification.read_at.is_(None))
    return db.session.scalar(scope.with_only_columns(func.count(Notification.id))) or 0


# E-mail -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SMTPSettings:
    host: str
    port: int
    user: str | None
    password: str | None
    starttls: bool
    timeout: float


@dataclass(frozen=True)
class OutgoingMail:
    to: str
    subject: str
    body: str
    sender: str
    settings: SMTPSettings


def mail_configured() -> bool:
    return bool(has_app_context() and current_app.config.get("HAVEN_SMTP_HOST"))


def smtp_settings() -> SMTPSettings:
    """Read the SMTP settings; environment variables arrive as text, so convert them."""
    config = current_app.config
    starttls = config.get("HAVEN_SMTP_STARTTLS")
    if isinstance(starttls, str):
        starttls = starttls.strip().lower() in TRUE_WORDS
    return SMTPSettings(
        host=str(config["HAVEN_SMTP_HOST"]),
        port=int(config.get("HAVEN_SMTP_PORT") or 587),
        user=config.get("HAVEN_SMTP_USER") or None,
        password=config.get("HAVEN_SMTP_PASSWORD") or None,
        starttls=bool(starttls),
        timeout=float(config.get("HAVEN_SMTP_TIMEOUT") or 10),
    )


def absolute_link(link: str) -> str:
    """Return the link with HAVEN_BASE_URL in front (the path alone when it is not set).

    Never built from the request's Host header, which a client chooses.
    """
    base = current_app.config.get("HAVEN_BASE_URL")
    return f"{str(base).rstrip('/')}{link}" if base else link


def compose_mail(user: User, kind: str, reference: str, link: str) -> OutgoingMail:
    """Write the e-mail for one recipient in their language: label, reference and link only."""
    languages = current_app.config["HAVEN_LANGUAGES"]
    language = user.language if user.language in languages else "en"
    url = absolute_link(link)
    with force_locale(language):
        label = str(NOTIFICATION_KINDS[kind])
        subject = _("Haven: %(label)s (%(reference)s)", label=label, reference=reference)
        body = "\n\n".join(
            [
                _("%(label)s: %(reference)s", label=label, reference=reference),
                _("Open it in Haven: %(url)s", url=url),
                _(
                    "Sign in to see the details. This message contains no personal data; "
                    "never reply to it with case details."
                ),
            ]
        )
    return OutgoingMail(
        to=user.email,
        subject=subject,
        body=body + "\n",
        sender=str(current_app.config.get("HAVEN_MAIL_FROM") or "haven@localhost"),
        settings=smtp_settings(),
    )


def _queue_mail(notification: Notification, mail: OutgoingMail) -> None:
    db.session().info.setdefault(_PENDING_MAIL, []).append((notification, mail))


def _build_message(mail: OutgoingMail) -> EmailMessage:
    message = EmailMessage()
    message["From"] = mail.sender
    message["To"] = mail.to
    message["Subject"] = mail.subject
    message["Message-ID"] = make_msgid(domain=mail.sender.rpartition("@")[2] or None)
    message.set_content(mail.body)
    return message


def deliver(mails: list[OutgoingMail]) -> int:
    """Send the mails over one SMTP connection; return how many went. Never raises.

    The log names the failure and the count, never an address or any content.
    """
    if not mails:
        return 0
    settings = mails[0].settings
    sent = 0
    try:
        with smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout) as smtp:
            if settings.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if settings.user:
                smtp.login(settings.user, settings.password or "")
            for mail in mails:
                smtp.send_message(_build_message(mail))
                sent += 1
    except (OSError, smtplib.SMTPException) as error:
        _log_failure(type(error).__name__, len(mails) - sent)
    return sent


def _log_failure(error_name: str, unsent: int) -> None:
    message = "notification e-mail failed (%s); %d message(s) not sent"
    if has_app_context():
        current_app.logger.warning(message, error_name, unsent)
    else:  # pragma: no cover - commits happen inside the app context
        import logging

        logging.getLogger("haven").warning(message, error_name, unsent)


def _send_after_commit(session: Session) -> None:
    pending = session.info.pop(_PENDING_MAIL, None)
    if not pending:
        return
    # A notification added in a savepoint that rolled back is transient again: no mail.
    deliver([mail for notification, mail in pending if inspect(notification).persistent])


def _forget_after_rollback(session: Session, transaction) -> None:
    # The outermost transaction ended without after_commit having taken the list: it rolled
    # back (or the session was closed), so its notifications do not exist.
    if transaction.parent is None:
        session.info.pop(_PENDING_MAIL, None)


# Wiring -----------------------------------------------------------------------------------


def init_app(app: Flask) -> None:
    """Listen for commits (mail) and put the unread count in every signed-in page."""
    if not event.contains(Session, "after_commit", _send_after_commit):
        event.listen(Session, "after_commit", _send_after_commit)
        event.listen(Session, "after_transaction_end", _forget_after_rollback)

    @app.context_processor
    def inject_unread_notifications():
        if not (current_user.is_authenticated and g.get("session_verified")):
            return {"unread_notifications": None}
        if "haven_unread_notifications" not in g:
            g.haven_unread_notifications = unread_count(current_user)
        return {"unread_notifications": g.haven_unread_notifications}
