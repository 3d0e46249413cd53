"""The base of every form: Flask-WTF (CSRF) with WTForms' messages translated from a cached catalog."""
from flask_wtf import FlaskForm as _FlaskForm

from portal.web.i18n import current_locale, wtforms_translations


class FlaskForm(_FlaskForm):
    class Meta:
        def get_translations(self, form):
            return wtforms_translations(current_locale())
