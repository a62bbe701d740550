"""Unbound extension objects; `create_app` binds them with `init_app`."""

from authlib.integrations.flask_client import OAuth
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect

from app.models.base import Base

db = SQLAlchemy(model_class=Base)
migrate = Migrate()
login_manager = LoginManager()
csrf = CSRFProtect()
oauth = OAuth()
# Default limits stay off: each sending route declares its own, keyed per user where it matters.
limiter = Limiter(key_func=get_remote_address, default_limits=[])
