"""The insights page and its CSV downloads: the same tables, so a download matches the page."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime, time, timedelta

from flask import Response, abort, render_template, request
from flask_babel import gettext as _

from portal.accounts.sessions import Event
from portal.core.database import utcnow
from portal.core.formatting import month_day
from portal.core.markers import N_
from portal.core.spreadsheet import csv_writer
from portal.core.vocabulary import Plan, Reason
from portal.insights import decisions as decision_rollups
from portal.insights.charts import stacked_bars
from portal.insights.figures import compute
from portal.staff import bp
from portal.staff.auth import log, roles_required
from portal.staff.views import ACTING
from portal.web.extensions import db
from portal.web.i18n import current_locale, day, moment, money, number, percent

SIGNALS = {
    "failed_lookups": N_("Failed lookups of the order number"),
    "repeat_refunds": N_("Customer refunded in the last 365 days"),
    "shared_document": N_("A document shared with another customer"),
    "payment_status": N_("Order charged back or already refunded"),
    "above_refundable": N_("Asked outside the policy (review)"),
}
OUTCOMES = {
    "approved": N_("Approved"),
    "declined": N_("Declined"),
    "saved": N_("Resolved with an offer"),
    "withdrawn": N_("Withdrawn"),
    "open": N_("Still open"),
}
TIMINGS = {
    "acknowledge": N_("Time to acknowledge"),
    "first_action": N_("Time to first staff action"),
    "resolution": N_("Time to resolution"),
}


RANGE_PROBLEM = N_("Choose a start on or before the end, at most ten years apart.")


def _range() -> tuple[date, date, bool]:
    """The days asked for, or the last 90 days and True when what was asked cannot be a period
    (not a date, the start after the end, more than ten years: the API refuses the same)."""
    today = utcnow().date()
    default = (today - timedelta(days=89), today)
    given = {name: request.args.get(name, "") for name in ("from", "to")}
    if not any(given.values()):
        return (*default, False)
    try:
        end = date.fromisoformat(given["to"]) if given["to"] else today
        start = date.fromisoformat(given["from"]) if given["from"] else end - timedelta(days=89)
    except (ValueError, OverflowError):
        return (*default, True)
    if start > end or (end - start).days > 3660 or end >= date.max - timedelta(days=7):
        return (*default, True)
    return start, end, False


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 3600:
        return _("%(minutes)s min", minutes=number(round(seconds / 60)))
    return _("%(hours)s h", hours=number(round(seconds / 3600, 1)))


def _rate(part: int, whole: int) -> str:
    return percent(part / whole) if whole else "–"


def weeks_between(start: date, end: date) -> list[str]:
    """Every week (its Monday) the range touches, so a quiet week shows as an empty bar."""
    monday = start - timedelta(days=start.weekday())
    weeks = []
    while monday <= end:
        weeks.append(monday.isoformat())
        monday += timedelta(days=7)
    return weeks


def tables(ins) -> dict[str, tuple[str, list[str], list[list[str]]]]:
    weeks = weeks_between(ins.start.date(), (ins.end - timedelta(seconds=1)).date())
    by = {(w, r): n for w, r, n in ins.reasons_weekly}
    decided = sum(ins.decisions.values())
    return {
        "reasons": (
            _("Requests per reason per week"),
            [_("Week")] + [_(r.staff_title) for r in Reason],
            [[day(date.fromisoformat(w))] + [str(by.get((w, r), 0)) for r in Reason] for w in weeks],
        ),
        "decisions": (
            _("Outcomes"),
            [_("Outcome"), _("Requests"), _("Share")],
            [
                [_(label), str(ins.decisions.get(key, 0)), _rate(ins.decisions.get(key, 0), decided)]
                for key, label in OUTCOMES.items()
            ],
        ),
        "refunded": (
            _("Amounts refunded"),
            [_("Currency"), _("Refunds"), _("Amount")],
            [[currency, str(count), money(total)] for currency, count, total in ins.refunded],
        ),
        "timings": (
            _("Median times"),
            [_("Measure"), _("Median")],
            [[_(label), _duration(ins.timings.get(key))] for key, label in TIMINGS.items()],
        ),
        "refund_rate": (
            _("Refund rate per product and plan"),
            [_("Product"), _("Plan"), _("Orders"), _("Refunded"), _("Refund rate")],
            [
                [product, _(Plan(plan).title), str(orders), str(refunds or 0), _rate(refunds or 0, orders)]
                for product, plan, orders, refunds in ins.refund_rate
            ],
        ),
        "saved": (
            _("Saved with an alternative, by reason"),
            [_("Reason"), _("Requests"), _("Saved"), _("Saved rate")],
            [[_(reason.staff_title), str(total), str(kept), _rate(kept, total)] for reason, total, kept in ins.saved],
        ),
        "signals": (
            _("Fraud signals"),
            [_("Signal"), _("Requests")],
            [[_(label), str(ins.signals.get(key, 0))] for key, label in SIGNALS.items()],
        ),
        "billing_errors": (
            _("Billing errors"),
            [_("Reference"), _("Filed"), _("State"), _("Amount requested"), _("Order")],
            [
                [ref, moment(when), _(state.staff_title), money(amount), number]
                for ref, when, state, amount, number in ins.billing_error_list
            ],
        ),
        "feedback": (
            _("Latest feedback"),
            [_("Date"), _("Rating"), _("Comment"), _("Reference")],
            [[moment(when), str(rating), comment, ref] for when, rating, comment, ref in ins.comments],
        ),
        "overdue": (
            _("Overdue requests"),
            [_("Reference"), _("Waiting since")],
            [[ref, moment(since)] for ref, since in ins.overdue_oldest],
        ),
    }


def _compute():
    start, end, refused = _range()
    begin = datetime.combine(start, time.min, tzinfo=UTC)
    finish = datetime.combine(end + timedelta(days=1), time.min, tzinfo=UTC)
    return start, end, refused, compute(db.session(), begin, finish, now=utcnow())


@bp.get("/insights")
@roles_required(*ACTING)
def insights():
    start, end, refused, ins = _compute()
    all_tables = tables(ins)
    title, headers, rows = all_tables["reasons"]
    weeks = weeks_between(start, end)
    series = [(headers[i + 1], [int(row[i + 1]) for row in rows]) for i in range(len(Reason))]
    chart = stacked_bars(
        title,
        _(
            "A bar per week from %(start)s to %(end)s; each colour is a reason. The table "
            "below holds the same numbers.",
            start=day(start),
            end=day(end),
        ),
        weeks,
        series,
        labels=[month_day(date.fromisoformat(week), current_locale()) for week in weeks],
        locale=current_locale(),
    )
    begin = datetime.combine(start, time.min, tzinfo=UTC)
    finish = datetime.combine(end + timedelta(days=1), time.min, tzinfo=UTC)
    made = decision_rollups.decisions(db.session(), begin, finish)
    waits = decision_rollups.waits(db.session(), begin, finish)
    saved = (
        waits["people"] - waits["rules"]
        if waits["people"] is not None and waits["rules"] is not None and waits["people"] > waits["rules"]
        else None
    )
    return render_template(
        "staff/insights.html",
        ins=ins,
        tables=all_tables,
        chart=chart,
        start=start,
        end=end,
        rate=_rate,
        made=made,
        waits={by: _duration(seconds) for by, seconds in waits.items()},
        time_saved=_duration(saved) if saved is not None else None,
        range_problem=_(RANGE_PROBLEM) if refused else "",
        asked={name: request.args.get(name, "") for name in ("from", "to")},
    ), (422 if refused else 200)


@bp.get("/insights.csv")
@roles_required(*ACTING)
def insights_csv():
    start, end, refused, ins = _compute()
    if refused:
        return Response(_(RANGE_PROBLEM), status=422, mimetype="text/plain")
    name = request.args.get("table", "")
    all_tables = tables(ins)
    if name not in all_tables:
        abort(404)
    _title, headers, rows = all_tables[name]
    out = io.StringIO()
    writer = csv_writer(out)  # formulas neutralised, byte-order mark first
    writer.writerow(headers)
    writer.writerows(rows)
    log(Event.EXPORT, detail=f"insights {name}")
    db.session.commit()
    response = Response(out.getvalue(), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{name}-{start}-{end}.csv"'
    return response
