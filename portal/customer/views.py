from datetime import datetime, timezone

from flask import abort, render_template

from portal.customer import bp
from portal.i18n import current_locale
from portal.policy_app import clause_paragraphs, current_policy


@bp.get("/policy", defaults={"version_id": None})
@bp.get("/policy/<version_id>")
def policy(version_id: str | None):
    policy = current_policy()
    current = policy.version_for(datetime.now(timezone.utc))
    if version_id is None:
        version = current
    else:
        try:
            version = policy.version(version_id)
        except KeyError:
            abort(404)
    locale = current_locale()
    clauses = [(clause, clause_paragraphs(clause, locale)) for clause in version.clauses]
    return render_template("customer/policy.html", policy=policy, version=version, current=current,
                           clauses=clauses, earlier=policy.earlier_than(current),
                           is_current=version.id == current.id)
