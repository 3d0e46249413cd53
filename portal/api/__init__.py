"""The JSON API under /api/v1: staff API tokens, problem documents, idempotent writes.

Each route is declared with :func:`operation`, which registers it with Flask and with the
OpenAPI document (``portal.api.spec``), authenticates the bearer token, checks the staff role,
validates the query and the body with the operation's pydantic models, turns the workflow's
refusals into problem documents, and keeps the first answer of every write sent with an
``Idempotency-Key``.
"""

from __future__ import annotations

import hashlib
from functools import wraps

from flask import Blueprint, Response, current_app, g, request
from flask_babel import gettext as _
from pydantic import BaseModel, ValidationError
from werkzeug.exceptions import HTTPException

from portal.accounts.models import STAFF_API
from portal.accounts.staff import api_token_for
from portal.api.schemas import FieldProblem, Problem
from portal.api.spec import PROBLEM_TITLES, Operation
from portal.core import idempotency
from portal.core.database import utcnow
from portal.core.vocabulary import StaffRole
from portal.refunds import acting
from portal.refunds.states import InvalidTransition
from portal.web import errors
from portal.web.extensions import db, limiter

bp = Blueprint("api", __name__, url_prefix="/api/v1")
OPERATIONS: list[Operation] = []
ACTING = (StaffRole.AGENT, StaffRole.ADMIN)
PROBLEM_BASE = "/api/v1/reference#problem-"
# The workflow names fields as the console's forms do; the API's bodies name a few differently.
API_FIELDS = {"clause": "clause_id", "offer": "offer_id", "reference": "processor_reference"}


class ApiProblem(Exception):
    def __init__(
        self,
        status: int,
        detail: str | None = None,
        errors: list[FieldProblem] | None = None,
        headers: dict | None = None,
    ):
        super().__init__(detail or PROBLEM_TITLES.get(status, ""))
        self.status = status
        self.detail = detail
        self.errors = errors
        self.headers = headers or {}


def problem_body(status: int, detail: str | None = None, errors: list[FieldProblem] | None = None) -> dict:
    title = _(PROBLEM_TITLES[status]) if status in PROBLEM_TITLES else "Error"
    return Problem(type=f"{PROBLEM_BASE}{status}", title=title, status=status, detail=detail, errors=errors).model_dump(
        mode="json", exclude_none=True
    )


def problem_response(
    status: int, detail: str | None = None, errors: list[FieldProblem] | None = None, headers: dict | None = None
) -> Response:
    response = _respond(status, problem_body(status, detail, errors))
    response.headers.update(headers or {})
    return response


# Addresses under /api/ that match no route are answered as problem documents, not pages.
bp.record_once(lambda state: errors.answer_under(state.app, "/api/", problem_response))


@bp.errorhandler(ApiProblem)
def _api_problem(error: ApiProblem):
    db.session.rollback()
    return problem_response(error.status, error.detail, error.errors, error.headers)


@bp.errorhandler(HTTPException)
def _http_problem(error: HTTPException):
    # 404/405 of the blueprint's own routes, 413 and Flask-Limiter's 429 come here as JSON too.
    db.session.rollback()
    headers = {k: v for k, v in error.get_headers() if k.lower() in ("allow", "retry-after")}
    detail = error.description if error.code == 429 else None
    return problem_response(error.code or 500, detail, headers=headers)


# -- authentication -------------------------------------------------------------------------------


def _bearer() -> str:
    scheme, _sep, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def client_key() -> str:
    # Per token when there is one (hashed: the limiter's storage never holds a usable secret).
    token = _bearer()
    if token:
        return "api-token:" + hashlib.sha256(token.encode()).hexdigest()[:32]
    return "api-ip:" + (request.remote_addr or "-")


# One budget per token across every operation (the README's "per token" limit): a shared limit
# counts all the routes it decorates under the one scope, where a plain limit counts each route apart.
api_rate_limit = limiter.shared_limit(lambda: current_app.config["API_RATE_LIMIT"], scope="api", key_func=client_key)


def authenticated_token():
    record = api_token_for(db.session(), _bearer(), now=utcnow()) if _bearer() else None
    if record is None:
        # One answer for a missing, unknown, revoked or disabled token.
        raise ApiProblem(
            401,
            _("Send a valid API token as “Authorization: Bearer …”."),
            headers={"WWW-Authenticate": 'Bearer realm="refund-portal"'},
        )
    g.api_token = record
    g.staff_id = record.staff_user_id  # the request's log line names who acted (portal.web.telemetry)
    return record


# -- operations -----------------------------------------------------------------------------------


def _field(loc: tuple) -> str:
    return ".".join(str(part) for part in loc) or "body"


def _nul_fields(value, path: str = "") -> list[str]:
    if isinstance(value, str):
        return [path or "body"] if "\x00" in value else []
    if isinstance(value, dict):
        return [f for k, v in value.items() for f in _nul_fields(v, f"{path}.{k}" if path else str(k))]
    if isinstance(value, list):
        return [f for i, v in enumerate(value) for f in _nul_fields(v, f"{path}.{i}" if path else str(i))]
    return []


def parse(model: type[BaseModel], data, *, json: bool):
    try:
        parsed = model.model_validate_json(data or b"{}") if json else model.model_validate(data)
    except ValidationError as error:
        if json and any(e["type"] == "json_invalid" for e in error.errors()):
            raise ApiProblem(400, _("The body is not valid JSON.")) from None
        raise ApiProblem(
            422,
            _("Some fields are not valid."),
            errors=[FieldProblem(field=_field(e["loc"]), message=e["msg"]) for e in error.errors()],
        ) from None
    faulty = _nul_fields(parsed.model_dump())
    if faulty:  # the database refuses NUL in text; no one types it
        raise ApiProblem(
            422,
            _("Some fields are not valid."),
            errors=[FieldProblem(field=f, message=_("Text may not contain NUL characters.")) for f in faulty],
        )
    return parsed


def _answer(op: Operation, result) -> tuple[int, dict]:
    if isinstance(result, BaseModel):
        return op.status, result.model_dump(mode="json")
    return op.status, result


def _run(op: Operation, view, user, path: dict) -> tuple[int, dict]:
    kwargs = dict(path)
    if op.query is not None:
        kwargs["query"] = parse(op.query, request.args.to_dict(), json=False)
    if op.body is not None:
        kwargs["body"] = parse(op.body, request.get_data(), json=True)
    try:
        return _answer(op, view(user, **kwargs))
    except ApiProblem as error:
        db.session.rollback()
        return error.status, problem_body(error.status, error.detail, error.errors)
    except InvalidTransition as error:
        db.session.rollback()  # nothing was changed
        return 409, problem_body(409, _(error.message, state=_(error.state.title)))
    except acting.WorkflowError as error:
        db.session.rollback()
        params = {k: str(v) for k, v in error.params.items()}
        message = _(error.message, **params)
        field = API_FIELDS.get(error.field, error.field)
        return 422, problem_body(422, message, [FieldProblem(field=field, message=message)])
    except acting.NotAllowed:
        db.session.rollback()
        return 403, problem_body(403, _("Your role does not allow this."))


def _idempotency_key() -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not (0 < len(key) <= 255) or not all(33 <= ord(c) <= 126 for c in key):
        raise ApiProblem(400, _("An Idempotency-Key is 1 to 255 visible ASCII characters."))
    return key


def _respond(status: int, body: dict, replayed: bool = False) -> Response:
    # Typed as werkzeug's sans-IO base, it is the app's response_class (a flask Response).
    response: Response = current_app.json.response(body)  # type: ignore[assignment]
    response.status_code = status
    if status >= 400:
        response.mimetype = "application/problem+json"
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


def operation(
    method: str,
    rule: str,
    *,
    summary: str,
    tag: str,
    roles=ACTING,
    body=None,
    query=None,
    response=None,
    status: int = 200,
    errors: tuple[int, ...] = (),
    description: str = "",
    permission: str = STAFF_API,
):
    def decorate(view):
        op = Operation(
            endpoint=view.__name__,
            method=method,
            rule=rule,
            summary=summary,
            description=description or (view.__doc__ or "").strip(),
            tag=tag,
            roles=tuple(roles),
            body=body,
            query=query,
            response=response,
            status=status,
            errors=errors,
            permission=permission,
        )
        OPERATIONS.append(op)

        @wraps(view)
        def handle(**path):
            token = authenticated_token()
            user = token.staff_user
            if not user.may(*op.roles):
                raise ApiProblem(403, _("Your role does not allow this."))
            if not token.allows(op.permission):
                raise ApiProblem(
                    403, _("This token does not have the “%(permission)s” permission.", permission=op.permission)
                )
            key = _idempotency_key() if op.writes else None
            if key is None:
                answer = _run(op, view, user, path)
                db.session.commit()  # the write, once; a refused one was rolled back already
                return _respond(*answer)
            print_ = idempotency.fingerprint(method, request.full_path, request.get_data())
            try:
                claimed = idempotency.claim(db.session(), user.id, key, print_, now=utcnow())
            except idempotency.KeyReused:
                raise ApiProblem(422, _("This Idempotency-Key was already used for a different request.")) from None
            except idempotency.InProgress:
                raise ApiProblem(409, _("A request with this Idempotency-Key is still being processed.")) from None
            if isinstance(claimed, idempotency.Replay):
                return _respond(claimed.status, claimed.body, replayed=True)
            try:
                answer = _run(op, view, user, path)
            except BaseException:
                idempotency.release(db.session(), claimed)
                raise
            idempotency.store(db.session(), claimed, *answer)
            db.session.commit()  # the write and the answer a repeat gets, in one transaction
            return _respond(*answer)

        limited = api_rate_limit(handle)
        bp.add_url_rule(rule, endpoint=view.__name__, view_func=limited, methods=[method])
        return view

    return decorate


from portal.api import views  # noqa: E402,F401  (registers the operations)
