"""The base of every form (Flask-WTF with CSRF, WTForms' messages translated from a cached catalog),
and the two forms that more than one blueprint shows: the order lookup and "email me a link"."""

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm as _FlaskForm
from markupsafe import Markup
from wtforms import Field, StringField
from wtforms.validators import DataRequired, Email, Length
from wtforms.widgets import HiddenInput

from portal.web.i18n import current_locale, wtforms_translations


def strip(value: str | None) -> str | None:
    return value.strip() if isinstance(value, str) else value


class FlaskForm(_FlaskForm):
    class Meta:
        def get_translations(self, form):
            return wtforms_translations(current_locale())

    def validate(self, extra_validators=None) -> bool:
        valid = super().validate(extra_validators)
        for field in self:
            # PostgreSQL cannot store NUL in text and nobody means to type one (it arrives pasted
            # from a corrupt file): the form comes back with the character removed, the rest of
            # what was typed kept, and a message under the field instead of a bare 400.
            if isinstance(field.data, str) and "\x00" in field.data:
                field.data = field.data.replace("\x00", "")
                add_error(
                    field,
                    _(
                        "This text contained an invisible control character (NUL). It was removed: check the text and send it again."
                    ),
                )
                valid = False
        return valid

    def hidden_tag(self, *fields):
        """The hidden fields without ids: a page with several forms would repeat "csrf_token" (ids must be unique)."""
        chosen = [getattr(self, f, None) if isinstance(f, str) else f for f in (fields or self)]
        return Markup(
            "\n".join(str(f(id=False)) for f in chosen if f is not None and isinstance(f.widget, HiddenInput))
        )


def add_error(field: Field, message: str) -> None:
    """Show ``message`` under ``field`` beside the errors its validation found."""
    field.errors = [*field.errors, message]


class LookupForm(FlaskForm):
    order_number = StringField(
        _l("Order number"),
        validators=[DataRequired(_l("Enter your order number.")), Length(max=64)],
        render_kw={"autocomplete": "off", "autocapitalize": "characters", "spellcheck": "false"},
    )
    email = StringField(
        _l("Email address"),
        validators=[DataRequired(_l("Enter the email address you used to buy.")), Length(max=320)],
        render_kw={"autocomplete": "email", "type": "email", "inputmode": "email"},
    )


class MagicLinkForm(FlaskForm):
    email = StringField(
        _l("Email address"),
        # The home page shows this form under the lookup form, whose field is "email" too: one id per page.
        id="link-email",
        validators=[
            DataRequired(_l("Enter your email address.")),
            Email(_l("Enter a valid email address.")),
            Length(max=320),
        ],
        filters=[strip],  # as the lookup does: spaces around an address are not part of it
        render_kw={"autocomplete": "email", "type": "email", "inputmode": "email"},
    )
