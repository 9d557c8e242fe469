"""Application factory: builds a Haven app from configuration and registers every area."""

from __future__ import annotations

from flask import Flask

from core.config import PROJECT_ROOT, load_config


def create_app(overrides: dict | None = None) -> Flask:
    """Create and configure a Haven application."""
    app = Flask(
        "haven",
        root_path=str(PROJECT_ROOT),
        instance_path=str(PROJECT_ROOT / "instance"),
        instance_relative_config=True,
        template_folder="templates",
        static_folder="static",
    )
    load_config(app, overrides)
    if app.config.get("HAVEN_PROXY_COUNT"):
        # Behind a reverse proxy the client address (rate limits, audit) comes from it.
        from werkzeug.middleware.proxy_fix import ProxyFix

        hops = int(app.config["HAVEN_PROXY_COUNT"])
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)
    app.jinja_env.add_extension("jinja2.ext.do")

    from core import audit, crypto, i18n, navigation, notifications, security, sessions
    from core.db import db
    from core.extensions import csrf, limiter, login_manager, migrate

    db.init_app(app)
    migrate.init_app(app, db, directory=str(PROJECT_ROOT / "migrations"), render_as_batch=True)
    crypto.init_app(app)
    csrf.init_app(app)
    limiter.init_app(app)
    i18n.init_app(app)
    security.init_app(app)
    audit.init_app(app)
    login_manager.init_app(app)
    sessions.init_app(app)
    navigation.init_app(app)
    notifications.init_app(app)

    from core import auth, views
    from core.admin import bp as admin_bp
    from core.audit_views import bp as audit_bp
    from core.notification_views import bp as notifications_bp

    app.register_blueprint(views.bp)
    app.register_blueprint(auth.bp)
    app.register_blueprint(admin_bp)
    app.register_blueprint(audit_bp)
    app.register_blueprint(notifications_bp)

    # Every mapper is configured before the first request.
    import casework.casefile_views
    import casework.duplicate_views
    import casework.reference_views
    import casework.supervision_views
    import casework.views
    import reports.all_models

    app.register_blueprint(casework.views.bp)
    app.register_blueprint(casework.casefile_views.bp)
    app.register_blueprint(casework.duplicate_views.bp)
    app.register_blueprint(casework.reference_views.bp)
    app.register_blueprint(casework.supervision_views.bp)

    # Hotline calls and presumed-victim notifications, before there is a case.
    import casework.contact_views

    app.register_blueprint(casework.contact_views.bp)

    # The child path (guardian, best interests, tracing) and the admin's public holidays.
    import casework.child_views
    import core.holiday_views

    app.register_blueprint(casework.child_views.bp)
    app.register_blueprint(core.holiday_views.bp)

    # Voluntary return, reintegration and follow-up visits.
    import casework.aftercare_views

    app.register_blueprint(casework.aftercare_views.bp)

    # The service directory (its models are imported with its views).
    import referrals.directory_views

    app.register_blueprint(referrals.directory_views.bp)

    import referrals.views

    app.register_blueprint(referrals.views.bp)

    import referrals.decision_views

    app.register_blueprint(referrals.decision_views.bp)

    # Anonymous refusals of the NRM (codes only).
    import casework.refusal_views

    app.register_blueprint(casework.refusal_views.bp)

    # PDF downloads (WeasyPrint is imported on the first render, not here).
    import reports.pdf_views

    app.register_blueprint(reports.pdf_views.bp)

    # Anonymised exports for analysts and coordinators.
    import reports.export_views

    app.register_blueprint(reports.export_views.bp)

    # The statistics dashboard (analysts and the national coordinator).
    import reports.views

    app.register_blueprint(reports.views.bp)

    # Report jobs: requested reports, run inline or by an RQ worker (flask reports worker).
    import reports.job_views

    app.register_blueprint(reports.job_views.bp)

    # Population figures (admin) and the recurring national reports.
    import reports.population_views
    import reports.recurring  # registers the annual and quarterly report kinds

    app.register_blueprint(reports.population_views.bp)

    from core.cli import register_cli

    register_cli(app)
    return app
