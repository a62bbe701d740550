"""The application factory: configuration, extensions, blueprints, error handlers and the CLI."""

from __future__ import annotations

from flask import Flask

from app.logs import configure_logging
from config import BASE_DIR, Config


def create_app(config: Config | None = None) -> Flask:
    config = config or Config.from_env()
    config.check_production_settings()

    app = Flask(
        __name__,
        template_folder=str(BASE_DIR / "templates"),
        static_folder=str(BASE_DIR / "static"),
        instance_path=config.INSTANCE_DIR,
    )
    app.config.from_mapping(config.to_flask())
    app.extensions["sorya.config"] = config
    configure_logging(config.LOG_FORMAT, config.LOG_LEVEL, config.secret_values())

    from app import extensions, runtime
    from app.cli import register_commands
    from app.runtime.admission import register_admission
    from app.web import register_blueprints
    from app.web.errors import register_error_handlers
    from app.web.observability import register_observability
    from app.web.security import register_security

    extensions.db.init_app(app)
    with app.app_context():
        extensions.ping_idle_connections(extensions.db.engine)
        extensions.reset_only_dirty_connections(extensions.db.engine)
        extensions.wait_for_sqlite_writers(extensions.db.engine)
    extensions.migrate.init_app(app, extensions.db, directory=str(BASE_DIR / "migrations"))
    extensions.login_manager.init_app(app)
    extensions.csrf.init_app(app)
    extensions.limiter.init_app(app)
    extensions.oauth.init_app(app)
    runtime.init_app(app)

    register_observability(app)
    register_security(app)
    register_blueprints(app)
    register_admission(app)  # after the blueprints: its hooks run where the chat blueprint's used to
    register_error_handlers(app)
    register_commands(app)
    return app
