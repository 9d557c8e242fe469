"""HTTP hardening: security headers, no-store caching and error pages without stack traces."""

from __future__ import annotations

from flask import Flask, current_app, g, render_template, request
from flask_babel import lazy_gettext as _l
from werkzeug.exceptions import HTTPException, InternalServerError

from core.config import is_production

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        # QR codes are inline data: images, so data: is allowed for images only.
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)

ERROR_TITLES = {
    400: _l("The request could not be understood"),
    403: _l("You are not allowed to do this"),
    404: _l("Page not found"),
    405: _l("This action is not allowed here"),
    413: _l("The upload is too large"),
    429: _l("Too many attempts"),
    500: _l("Something went wrong"),
}

ERROR_MESSAGES = {
    400: _l("Please go back, check what you entered and try again."),
    403: _l("Your role does not allow this action. Ask your supervisor if you need it."),
    404: _l("The page does not exist or you do not have access to it."),
    405: _l("Please use the buttons and links in Haven."),
    413: _l(
        "Attachments can be at most %(size)s MB, and this upload was larger than Haven "
        "accepts, so nothing was saved. Go back to the form (your browser keeps what you "
        "typed) and choose a smaller file."
    ),
    429: _l("Please wait a few minutes before trying again."),
    500: _l("The error has been recorded. Please try again; nothing you saved was lost."),
}


def mark_sensitive() -> None:
    """Mark the current response as carrying personal data (never cached anywhere)."""
    g.sensitive_response = True


def init_app(app: Flask) -> None:
    production = is_production(app)

    @app.after_request
    def set_security_headers(response):
        headers = response.headers
        headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        headers["X-Content-Type-Options"] = "nosniff"
        headers["X-Frame-Options"] = "DENY"
        headers["Referrer-Policy"] = "no-referrer"
        headers["Cross-Origin-Opener-Policy"] = "same-origin"
        headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=()"
        if production:
            headers["Strict-Transport-Security"] = "max-age=63072000; includeSubDomains"
        # Every page behind login may show personal data or secrets: none is cached.
        # Static assets are the only public, cacheable responses.
        if request.endpoint != "static" or g.get("sensitive_response"):
            headers["Cache-Control"] = "no-store"
            headers["Pragma"] = "no-cache"
        return response

    def render_error(status: int):
        message = ERROR_MESSAGES.get(status, ERROR_MESSAGES[500])
        back_url = None
        if status == 413:
            megabytes = int(current_app.config["HAVEN_ATTACHMENT_MAX_BYTES"]) // (1024 * 1024)
            message = ERROR_MESSAGES[413] % {"size": megabytes}
            back_url = _form_url()
        return (
            render_template(
                "errors/error.html",
                status=status,
                title=ERROR_TITLES.get(status, ERROR_TITLES[500]),
                message=message,
                back_url=back_url,
            ),
            status,
        )

    def _form_url() -> str | None:
        """Return the address of the form a too-large POST came from, when it has a page.

        Referrer-Policy is no-referrer, so the form's own address (GET on the same path)
        is the way back; the browser's Back button keeps what was typed.
        """
        rule = request.url_rule
        if rule is None or "GET" not in (rule.methods or ()):
            return None
        return request.path

    @app.errorhandler(HTTPException)
    def handle_http_error(error: HTTPException):
        if error.code is None or error.code < 400:
            return error
        return render_error(error.code if error.code in ERROR_TITLES else 500)

    @app.errorhandler(InternalServerError)
    def handle_internal_error(error):
        # The original exception is logged by Flask; the page shows nothing of it.
        return render_error(500)
