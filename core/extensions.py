"""Flask extensions, created unbound and attached in create_app."""

from flask_babel import Babel
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_wtf.csrf import CSRFProtect

migrate = Migrate()
login_manager = LoginManager()
csrf = CSRFProtect()
babel = Babel()
# No default limits: only login, TOTP and password routes are limited, explicitly.
limiter = Limiter(key_func=get_remote_address, default_limits=[])
