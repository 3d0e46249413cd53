"""Customer forms. Labels and messages are marked for translation and resolved per request."""

from flask_babel import lazy_gettext as _l
from wtforms import (  # type: ignore[attr-defined]  # SelectChoice is new in WTForms 3.3; types-WTForms 3.2 lacks it
    BooleanField,
    HiddenField,
    MultipleFileField,
    RadioField,
    SelectChoice,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, InputRequired, Length, Optional

from portal.core.vocabulary import LOCALES, Reason
from portal.refunds.feedback import COME_BACK
from portal.web.forms import FlaskForm, LookupForm, MagicLinkForm  # noqa: F401  (the customer pages use them too)
from portal.web.i18n import NATIVE_NAMES


class AccessForm(FlaskForm):
    pass


def reason_choices():
    return [SelectChoice(r.value, _l(r.title)) for r in Reason]


class RefundForm(FlaskForm):
    submission_key = HiddenField()
    reason = RadioField(
        _l("Why are you asking for a refund?"), choices=[], validators=[InputRequired(_l("Choose a reason."))]
    )
    details = TextAreaField(
        _l("Tell us more (optional)"), validators=[Optional(), Length(max=5000)], render_kw={"rows": 5}
    )
    amount_choice = RadioField(
        _l("How much are you asking for?"),
        choices=[SelectChoice("full", _l("The full amount")), SelectChoice("partial", _l("Part of it"))],
        default="full",
        validators=[InputRequired()],
    )
    partial_amount = StringField(
        _l("Amount"), validators=[Optional(), Length(max=32)], render_kw={"inputmode": "decimal", "autocomplete": "off"}
    )
    review_requested = BooleanField(
        _l(
            "Ask for a review: I understand the policy does not grant this refund, "
            "and I would like the staff to look at my case."
        )
    )
    documents = MultipleFileField(
        _l("Documents (PDF, PNG, JPEG or WebP; up to 5 files of 10 MB)"),
        render_kw={"accept": "application/pdf,image/png,image/jpeg,image/webp"},
    )
    locale = SelectField(
        _l("Language for updates"), choices=[SelectChoice(code, NATIVE_NAMES[code]) for code in LOCALES]
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.reason.choices = reason_choices()


class AnswerForm(FlaskForm):
    answer = TextAreaField(_l("Your answer"), validators=[Optional(), Length(max=5000)], render_kw={"rows": 6})
    documents = MultipleFileField(
        _l("More documents (optional)"), render_kw={"accept": "application/pdf,image/png,image/jpeg,image/webp"}
    )


class WithdrawForm(FlaskForm):
    pass


class OfferForm(FlaskForm):
    offer_id = HiddenField(validators=[DataRequired()])


class FeedbackForm(FlaskForm):
    rating = RadioField(
        _l("How would you rate the way we handled your refund?"),
        choices=[SelectChoice(str(n), str(n)) for n in range(5, 0, -1)],
        validators=[InputRequired(_l("Choose a rating from 1 to 5."))],
    )
    comment = TextAreaField(_l("What could we have done better? (optional)"), validators=[Optional(), Length(max=5000)])
    come_back = RadioField(
        _l("Would you consider coming back?"), choices=[], validators=[InputRequired(_l("Choose an answer."))]
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.come_back.choices = [SelectChoice(key, _l(label)) for key, label in COME_BACK.items()]
