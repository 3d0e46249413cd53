"""Extensions are created unbound here and bound to the app in the factory."""

from flask_babel import Babel
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect

from portal.core.database import Base

db = SQLAlchemy(model_class=Base)
migrate = Migrate()
babel = Babel()
csrf = CSRFProtect()
# Memory storage by default; PORTAL_RATELIMIT_STORAGE_URI=redis://… shares limits between workers.
limiter = Limiter(key_func=get_remote_address)
login_manager = LoginManager()
