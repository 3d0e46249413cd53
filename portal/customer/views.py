import hashlib
import hmac
import logging
import secrets
from datetime import UTC, datetime

from flask import abort, current_app, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from sqlalchemy import select

from portal.core.database import utcnow
from portal.core.tokens import hash_token
from portal.core.vocabulary import Reason
from portal.customer import access, bp
from portal.customer.forms import (
    AccessForm,
    AnswerForm,
    FeedbackForm,
    LookupForm,
    MagicLinkForm,
    OfferForm,
    RefundForm,
    WithdrawForm,
)
from portal.customer.presenters import filing_input, order_view, request_view
from portal.documents.models import Document
from portal.documents.uploads import document_key
from portal.orders import magic, portal_sessions
from portal.orders.lookup import client_fingerprint, find_order, normalize_order_number
from portal.refunds import feedback as feedback_domain
from portal.refunds import filing
from portal.refunds.models import RefundRequest
from portal.refunds.states import Action, allowed
from portal.web import staging
from portal.web.extensions import db, limiter
from portal.web.forms import add_error
from portal.web.i18n import SESSION_KEY as LOCALE_SESSION_KEY
from portal.web.i18n import current_locale, reader_zone, speak_owners_language
from portal.web.links import links
from portal.web.mail import issued_receipt, receipt_response
from portal.web.policy import clause_paragraphs, clause_title, current_policy
from portal.web.storage import download, storage

# The filing rules name the amount "amount"; the form asks for it as a partial amount.
FILING_FIELDS = {"amount": "partial_amount"}


def _client_order_key() -> str:
    # Per client and order: a stranger hammering an order number uses up only their own attempts,
    # never its owner's.
    return (
        "order:"
        + (request.remote_addr or "-")
        + ":"
        + normalize_order_number(request.form.get("order_number", ""))[:64]
    )


def _client_key() -> str:
    return "ip:" + (request.remote_addr or "-")


@bp.get("/policy", defaults={"version_id": None})
@bp.get("/policy/<version_id>")
def policy(version_id: str | None):
    policy = current_policy()
    current = policy.version_for(datetime.now(UTC))
    if version_id is None:
        version = current
    else:
        try:
            version = policy.version(version_id)
        except KeyError:
            abort(404)
    locale = current_locale()
    clauses = [(clause, clause_title(clause, locale), clause_paragraphs(clause, locale)) for clause in version.clauses]
    return render_template(
        "customer/policy.html",
        policy=policy,
        version=version,
        current=current,
        clauses=clauses,
        earlier=policy.earlier_than(current),
        is_current=version.id == current.id,
    )


@bp.post("/lookup")
@limiter.limit(lambda: current_app.config["LOOKUP_RATE_LIMIT"], key_func=lambda: "ip:" + (request.remote_addr or "-"))
@limiter.limit(lambda: current_app.config["LOOKUP_ORDER_RATE_LIMIT"], key_func=_client_order_key)
def lookup():
    form = LookupForm()
    if form.validate_on_submit():
        order = find_order(
            db.session(),
            form.order_number.data,
            form.email.data,
            client_fingerprint(request.remote_addr, current_app.config["SECRET_KEY"]),
        )
        if order is not None:
            access.grant_order(order)  # remembers the browser's time zone on the customer's record
        db.session.commit()  # a miss is recorded for the staff's fraud signals
        if order is not None:
            return redirect(url_for("customer.order_page", order_number=order.order_number))
        add_error(
            form.order_number,
            _("We could not find an order with that number and email address. Check both and try again."),
        )
    return render_template("main/home.html", lookup_form=form, link_form=MagicLinkForm()), 200


@bp.post("/access-link")
@limiter.limit(
    lambda: current_app.config["MAGIC_LINK_RATE_LIMIT"], key_func=lambda: "ip:" + (request.remote_addr or "-")
)
def access_link():
    form = MagicLinkForm()
    if not form.validate_on_submit():
        return render_template("main/home.html", lookup_form=LookupForm(), link_form=form)
    magic.ask_for_magic_link(db.session(), form.email.data, locale=current_locale(), now=utcnow())
    db.session.commit()
    # The same answer whether or not the address has orders: nobody learns who our customers are.
    flash(
        _("If we have orders for that address, we have sent it a link to them. The link works once, for 30 minutes."),
        "success",
    )
    return redirect(url_for("main.home"))


@bp.get("/access/<token>")
def access_token(token: str):
    # Move the secret out of the address bar and history at once; it is exchanged by a POST.
    session[magic.SESSION_KEY] = token
    return redirect(url_for("customer.access_confirm"), code=303)


@bp.route("/access", methods=["GET", "POST"])
def access_confirm():
    form = AccessForm()
    token = session.get(magic.SESSION_KEY)
    if request.method == "POST" and form.validate_on_submit() and token:
        session.pop(magic.SESSION_KEY, None)
        customer = magic.redeem(db.session(), token, now=utcnow())
        if customer is not None:
            access.grant_customer(customer)
        db.session.commit()
        if customer is not None:
            return redirect(url_for("customer.orders"))
        token = None
    return render_template("customer/access.html", form=form, valid=bool(token))


log = logging.getLogger(__name__)


@bp.get("/portal-session/<token>")
def portal_session(token: str):
    """A SaaS's own app sent its signed-in user here (POST /api/v1/portal-sessions): once, for 10 minutes."""
    record = portal_sessions.redeem(
        db.session(),
        token,
        now=utcnow(),
        client=client_fingerprint(request.remote_addr, current_app.config["SECRET_KEY"]),
    )
    db.session.commit()
    if record is None:
        log.warning("portal session refused: unknown, used or expired token")
        return render_template("customer/portal_session_expired.html"), 410
    access.grant_order(record.order)
    db.session.commit()
    if record.locale:
        # The customer's own app chose the language for them: an explicit choice, kept.
        session[LOCALE_SESSION_KEY] = record.locale
    if record.return_url:
        access.set_return_url(record.order_id, record.return_url)
    log.info("portal session %s used for order %s", record.id, record.order.order_number)
    return redirect(url_for("customer.order_page", order_number=record.order.order_number), code=303)


@bp.get("/orders")
def orders():
    visible = access.visible_orders()
    signed_in = next((o for o in visible if o.customer_id == session.get(access.CUSTOMER_KEY)), None)
    if signed_in is not None:
        speak_owners_language(signed_in.customer.locale)
    return render_template("customer/orders.html", orders=[order_view(o) for o in visible])


@bp.get("/orders/<order_number>")
def order_page(order_number: str):
    order = access.owned_order_summary(order_number)
    speak_owners_language(order.customer_locale)
    return render_template("customer/order.html", view=order_view(order), return_url=access.return_url(order.id))


def _submission_mac(order_id: int, nonce: str) -> str:
    binding = session.setdefault("form_binding", secrets.token_hex(16))
    return hmac.new(
        current_app.config["SECRET_KEY"].encode(), f"submission:{binding}:{order_id}:{nonce}".encode(), hashlib.sha256
    ).hexdigest()[:32]


def _new_submission_key(order_id: int) -> str:
    """A key random for each rendered form, bound to this browser session and this order."""
    nonce = secrets.token_hex(12)
    return f"{nonce}.{_submission_mac(order_id, nonce)}"


def _checked_submission_key(order_id: int) -> str:
    """The form's key when it was made for this session and order; otherwise none (no deduplication)."""
    nonce, _dot, mac = (request.form.get("submission_key") or "").partition(".")
    if nonce and mac and hmac.compare_digest(mac, _submission_mac(order_id, nonce)):
        return f"{order_id}:{nonce}"
    return ""


@bp.route("/orders/<order_number>/refund", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["FILING_RATE_LIMIT"], methods=["POST"], key_func=_client_key)
def refund_new(order_number: str):
    order = access.owned_order(order_number)
    existing = filing.open_request(db.session(), order) or filing.offer_taken(db.session(), order)
    if existing is not None:  # an open request, or an alternative taken instead of a refund
        return redirect(url_for("customer.request_page", reference=existing.reference))
    speak_owners_language(order.customer.locale)
    view = order_view(order)
    form = RefundForm()
    scope = f"order:{order.id}"

    def page(status: int = 200):
        # The verdict, the review box and its wording follow the reason chosen (in the link from
        # the order page, or sent with the form): a billing error is not a refusal to acknowledge.
        chosen = view.for_reason(form.reason.data)
        return render_template(
            "customer/refund_new.html",
            form=form,
            view=view,
            chosen=chosen,
            requestable=view.format({"amount": filing.most_requestable(chosen)})["amount"],
            staged=staging.staged(scope),
        ), status

    if request.method == "GET":
        form.submission_key.data = _new_submission_key(order.id)
        form.locale.data = current_locale()
        asked = request.args.get("reason", "")
        form.reason.data = asked if asked in {r.value for r in Reason} else Reason.NO_LONGER_NEEDED.value
        return page()

    valid = form.validate_on_submit()
    documents, rejected = staging.stage(scope, request.files.getlist(form.documents.name))
    for problem in rejected:
        add_error(form.documents, _(problem.message, **problem.params))
    if valid and not rejected:
        try:
            filed = filing.file_refund(
                db.session(),
                order,
                filing_input(form, order, documents, _checked_submission_key(order.id), reader_zone()),
                policy=current_policy(),
                now=utcnow(),
                links=links(),
                storage=storage(),
            )
        except filing.FilingError as error:
            if error.existing is not None:
                return redirect(url_for("customer.request_page", reference=error.existing.reference))
            add_error(
                getattr(form, FILING_FIELDS.get(error.field, error.field), form.details),
                _(error.message, **view.format(error.params)),
            )
        except ValueError as error:  # an amount that does not parse
            add_error(form.partial_amount, str(error))
        else:
            db.session.commit()
            staging.clear(scope)
            if filed.created:
                flash(
                    _(
                        "Your refund request %(reference)s has been received. We have sent a confirmation "
                        "to your email address.",
                        reference=filed.request.reference,
                    ),
                    "success",
                )
            return redirect(url_for("customer.request_page", reference=filed.request.reference), code=303)
    return page(422)


@bp.post("/orders/<order_number>/offer")
def offer_accept(order_number: str):
    order = access.owned_order(order_number)
    speak_owners_language(order.customer.locale)  # the thank-you note is read on the owner's pages
    form = OfferForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        refund_request = filing.accept_offer(
            db.session(),
            order,
            form.offer_id.data or "",
            policy=current_policy(),
            locale=current_locale(),
            now=utcnow(),
            links=links(),
        )
    except KeyError:
        abort(404)
    db.session.commit()
    flash(_("Thank you: we have noted your choice and our team will set it up for you."), "success")
    return redirect(url_for("customer.request_page", reference=refund_request.reference), code=303)


@bp.get("/track/<token>")
def track(token: str):
    refund_request = db.session.scalar(
        select(RefundRequest).where(RefundRequest.tracking_token_hash == hash_token(token))
    )
    if refund_request is None:
        access.not_yours()
    access.grant_order(refund_request.order)
    db.session.commit()
    return redirect(url_for("customer.request_page", reference=refund_request.reference), code=303)


@bp.get("/requests/<reference>")
def request_page(reference: str):
    refund_request = access.owned_request(reference)
    speak_owners_language(refund_request.locale)
    return render_template(
        "customer/request.html",
        view=request_view(refund_request),
        answer_form=AnswerForm(),
        withdraw_form=WithdrawForm(),
        staged=staging.staged(f"answer:{refund_request.id}"),
        receipt=issued_receipt(refund_request),
    )


@bp.get("/requests/<reference>/receipt")
def request_receipt(reference: str):
    receipt = issued_receipt(access.owned_request(reference)) or abort(404)
    return receipt_response(receipt)


@bp.post("/requests/<reference>/answer")
@limiter.limit(lambda: current_app.config["FILING_RATE_LIMIT"], key_func=_client_key)
def request_answer(reference: str):
    refund_request = access.owned_request(reference)
    speak_owners_language(refund_request.locale)  # before the form: its messages are worded as it validates
    form = AnswerForm()
    scope = f"answer:{refund_request.id}"
    slots = {key[len("item_") :]: f for key, f in request.files.items() if key.startswith("item_")}
    valid = form.validate_on_submit()
    documents, rejected = staging.stage(scope, request.files.getlist(form.documents.name), slots)
    for problem in rejected:
        add_error(form.documents, _(problem.message, **problem.params))
    if valid and not rejected:
        try:
            filing.answer_information_request(
                db.session(),
                refund_request,
                form.answer.data or "",
                documents,
                now=utcnow(),
                links=links(),
                storage=storage(),
            )
        except filing.FilingError as error:
            add_error(getattr(form, error.field, form.answer), _(error.message, **error.params))
        else:
            db.session.commit()
            staging.clear(scope)
            flash(_("Thank you, we have your answer. We will get back to you soon."), "success")
            return redirect(url_for("customer.request_page", reference=reference), code=303)
    return render_template(
        "customer/request.html",
        view=request_view(refund_request),
        answer_form=form,
        withdraw_form=WithdrawForm(),
        staged=staging.staged(scope),
        receipt=issued_receipt(refund_request),
    ), 422


@bp.get("/requests/<reference>/withdraw")
def request_withdraw_confirm(reference: str):
    """Withdrawing cannot be undone: it is asked once more on a page of its own (no script needed)."""
    refund_request = access.owned_request(reference)
    speak_owners_language(refund_request.locale)
    if not allowed(refund_request.state, Action.WITHDRAW):
        return redirect(url_for("customer.request_page", reference=reference), code=303)
    return render_template("customer/withdraw.html", view=request_view(refund_request), withdraw_form=WithdrawForm())


@bp.post("/requests/<reference>/withdraw")
def request_withdraw(reference: str):
    refund_request = access.owned_request(reference)
    speak_owners_language(refund_request.locale)
    if not WithdrawForm().validate_on_submit():
        abort(400)
    filing.withdraw_refund(db.session(), refund_request, now=utcnow())
    db.session.commit()
    flash(_("You have withdrawn this refund request."), "success")
    return redirect(url_for("customer.request_page", reference=reference), code=303)


@bp.get("/documents/<int:document_id>")
def document_download(document_id: int):
    document = db.session.get(Document, document_id)
    if document is None or not access.may_see(document.refund_request.order):
        abort(404)
    return download(
        document_key(document.stored_name),
        sha256=document.sha256,
        size=document.size,
        filename=document.original_name,
        mimetype=document.content_type,
    )


@bp.route("/feedback/<token>", methods=["GET", "POST"])
def feedback(token: str):
    try:
        refund_request = feedback_domain.request_for_token(
            db.session(), current_app.config["SECRET_KEY"], token, now=utcnow()
        )
    except feedback_domain.LinkExpired as expired:
        if expired.request is not None:
            speak_owners_language(expired.request.locale)
        return render_template("customer/feedback_expired.html"), 410
    if refund_request is None:
        abort(404)
    # The page speaks the language of the email that brought the customer, unless they chose another.
    speak_owners_language(refund_request.locale)
    if feedback_domain.existing_feedback(db.session(), refund_request) is not None:
        return render_template("customer/feedback_thanks.html", already=True)
    form = FeedbackForm()
    if form.validate_on_submit():
        try:
            feedback_domain.leave_feedback(
                db.session(),
                refund_request,
                rating=int(form.rating.data),
                comment=form.comment.data or "",
                come_back=form.come_back.data,
                now=utcnow(),
            )
            db.session.commit()
        except feedback_domain.AlreadyAnswered:
            return render_template("customer/feedback_thanks.html", already=True)
        return render_template("customer/feedback_thanks.html", already=False)
    return render_template("customer/feedback.html", form=form, r=refund_request), (422 if form.errors else 200)
