"""Staff forms: labels and messages are marked for translation and resolved per request."""

from flask_babel import lazy_gettext as _l
from wtforms import (  # type: ignore[attr-defined]  # SelectChoice is new in WTForms 3.3; types-WTForms 3.2 lacks it
    BooleanField,
    EmailField,
    PasswordField,
    SelectChoice,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
    widgets,
)
from wtforms.validators import DataRequired, Email, Length, Optional

from portal.core.vocabulary import LOCALES, StaffRole
from portal.refunds.questions import DOCUMENTS, QUESTIONS
from portal.web.forms import FlaskForm
from portal.web.i18n import NATIVE_NAMES


class Checkboxes(SelectMultipleField):
    widget = widgets.ListWidget(prefix_label=False)
    option_widget = widgets.CheckboxInput()


class LoginForm(FlaskForm):
    email = EmailField(
        _l("Email address"),
        validators=[DataRequired(_l("Enter your email address.")), Length(max=320)],
        render_kw={"autocomplete": "username"},
    )
    password = PasswordField(
        _l("Password"),
        validators=[DataRequired(_l("Enter your password.")), Length(max=500)],
        render_kw={"autocomplete": "current-password"},
    )


def saved_reply_field() -> SelectField:
    # Choices are the live saved replies, set per request by the view (portal.staff.presenters.reply_choices).
    return SelectField(_l("Insert a saved reply"), choices=[], validators=[Optional()], validate_choice=False)


class ActionForm(FlaskForm):
    """A button that only needs its CSRF token (start the review, retry, resend)."""


class ResendForm(FlaskForm):
    confirm = BooleanField(
        _l("Yes, send this message again (the recipient may get it twice)"),
        validators=[DataRequired(_l("Tick the box to confirm."))],
    )


class AssignForm(FlaskForm):
    # Choices (the active agents and admins, "" for nobody) are set per request by the view.
    assignee = SelectField(_l("Assignee"), validators=[Optional()], validate_choice=False)


class SavedViewForm(FlaskForm):
    name = StringField(_l("Name of this view"), validators=[DataRequired(_l("Give the view a name.")), Length(max=60)])
    query = StringField(validators=[Optional(), Length(max=1000)])


class AskForm(FlaskForm):
    questions = Checkboxes(
        _l("Standard questions"),
        choices=[SelectChoice(k, _l(v)) for k, v in QUESTIONS.items()],
        validators=[Optional()],
    )
    documents = Checkboxes(
        _l("Documents to upload"),
        choices=[SelectChoice(k, _l(v)) for k, v in DOCUMENTS.items()],
        validators=[Optional()],
    )
    custom = StringField(_l("Your own question (optional)"), validators=[Optional(), Length(max=500)])
    message = TextAreaField(_l("Message to the customer (optional)"), validators=[Optional(), Length(max=5000)])
    saved_reply = saved_reply_field()


class ApproveForm(FlaskForm):
    amount = StringField(
        _l("Amount to refund"),
        validators=[DataRequired(_l("Enter the amount.")), Length(max=32)],
        render_kw={"inputmode": "decimal"},
    )
    note = TextAreaField(
        _l("Message to the customer (optional)"), id="approve-note", validators=[Optional(), Length(max=5000)]
    )
    override_reason = TextAreaField(
        _l("Reason for going above the policy (admins only)"),
        id="approve-override-reason",
        validators=[Optional(), Length(max=2000)],
    )
    saved_reply = saved_reply_field()


class DeclineForm(FlaskForm):
    clause = SelectField(
        _l("Policy clause the decision rests on"),
        choices=[],
        validators=[DataRequired(_l("Choose the policy clause the decision rests on."))],
    )
    offer = SelectField(_l("Alternative to offer"), choices=[], validators=[Optional()])
    note = TextAreaField(
        _l("Explanation for the customer (optional)"), id="decline-note", validators=[Optional(), Length(max=5000)]
    )
    override_reason = TextAreaField(
        _l("Reason for declining what the policy grants (required of agents when it does)"),
        id="decline-override-reason",
        validators=[Optional(), Length(max=2000)],
    )
    saved_reply = saved_reply_field()


class ProcessForm(FlaskForm):
    reference = StringField(_l("Processor's reference of the refund"), validators=[Optional(), Length(max=128)])


class NoteForm(FlaskForm):
    # Empty is fine when a saved reply is chosen; the service refuses a note with neither.
    text = TextAreaField(_l("Internal note"), validators=[Optional(), Length(max=5000)])
    saved_reply = saved_reply_field()


class TestSendForm(FlaskForm):
    message = SelectField(_l("Message"), choices=[], validators=[DataRequired()])
    locale = SelectField(
        _l("Language"),
        choices=[SelectChoice(code, NATIVE_NAMES[code]) for code in LOCALES],
        validators=[DataRequired()],
    )
    email = EmailField(
        _l("Send to"),
        validators=[
            DataRequired(_l("Enter your email address.")),
            Email(_l("Enter a valid email address.")),
            Length(max=320),
        ],
    )


class StaffForm(FlaskForm):
    email = EmailField(
        _l("Email address"),
        validators=[
            DataRequired(_l("Enter your email address.")),
            Email(_l("Enter a valid email address.")),
            Length(max=320),
        ],
    )
    name = StringField(_l("Name"), validators=[Optional(), Length(max=200)])
    role = SelectField(
        _l("Role"), choices=[SelectChoice(r.value, r.value) for r in StaffRole], validators=[DataRequired()]
    )
    password = PasswordField(
        _l("Password"),
        validators=[DataRequired(_l("Enter your password.")), Length(max=500)],
        render_kw={"autocomplete": "new-password"},
    )


class WebhookForm(FlaskForm):
    url = StringField(
        _l("Endpoint address"),
        validators=[DataRequired(_l("Enter the endpoint's address.")), Length(max=2000)],
        render_kw={"placeholder": "https://helpdesk.example.com/hooks/refunds", "inputmode": "url"},
    )
    description = StringField(_l("What it is for"), validators=[Optional(), Length(max=200)])


class CodeForm(FlaskForm):
    """The second step of signing in: a code from the authenticator app, or a recovery code."""

    code = StringField(
        _l("Code from your authenticator app, or a recovery code"),
        validators=[DataRequired(_l("Enter the code.")), Length(max=32)],
        render_kw={"autocomplete": "one-time-code", "inputmode": "text", "autofocus": True},
    )


class PasswordChangeForm(FlaskForm):
    current = PasswordField(
        _l("Current password"),
        validators=[DataRequired(_l("Enter your password.")), Length(max=500)],
        render_kw={"autocomplete": "current-password"},
    )
    password = PasswordField(
        _l("New password"),
        validators=[DataRequired(_l("Enter a new password.")), Length(max=500)],
        render_kw={"autocomplete": "new-password"},
    )


class ResetRequestForm(FlaskForm):
    email = EmailField(
        _l("Email address"),
        validators=[DataRequired(_l("Enter your email address.")), Length(max=320)],
        render_kw={"autocomplete": "username"},
    )


class ResetForm(FlaskForm):
    password = PasswordField(
        _l("New password"),
        validators=[DataRequired(_l("Enter a new password.")), Length(max=500)],
        render_kw={"autocomplete": "new-password"},
    )


class RoleForm(FlaskForm):
    role = SelectField(
        _l("Role"), choices=[SelectChoice(r.value, r.value) for r in StaffRole], validators=[DataRequired()]
    )


class CustomerDataForm(FlaskForm):
    """Find a customer by address to export their data or erase it (admins)."""

    email = EmailField(
        _l("Customer's email address"), validators=[DataRequired(_l("Enter your email address.")), Length(max=320)]
    )
    confirm = StringField(_l("To erase, type the address again"), validators=[Optional(), Length(max=320)])
