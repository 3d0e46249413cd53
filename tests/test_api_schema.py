"""schemathesis against the OpenAPI document: generated requests to every operation find no
server error and no answer that breaks the document (status, content type, body schema)."""

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from portal.core.vocabulary import StaffRole
from tests.journey_helpers import file_request, import_samples, lookup, pdf_bytes
from tests.staff_helpers import make_staff


@pytest.fixture
def api_app(make_app, db_session):
    app = make_app(API_RATE_LIMIT="100000 per minute")
    import_samples(db_session)
    make_staff(db_session, "admin@example.com", StaffRole.ADMIN)
    # A few real requests, so reads and actions meet data as well as unknown references.
    for number, email in (("ORD-10001", "alice.m@example.com"), ("ORD-10003", "bob.tanaka@example.org")):
        customer = app.test_client()
        lookup(customer, number, email)
        file_request(customer, number, files=[("invoice.pdf", pdf_bytes())])
    return app


@pytest.fixture
def api_schema(api_app):
    return schemathesis.openapi.from_wsgi("/api/v1/openapi.json", api_app)


@pytest.fixture
def admin_token(api_app):
    result = api_app.test_cli_runner().invoke(
        args=[
            "staff",
            "token",
            "admin@example.com",
            "--name",
            "fuzz",
            "--permission",
            "staff_api",
            "--permission",
            "portal_sessions",
        ]
    )
    return result.stdout.strip().splitlines()[-1]


def test_the_api_keeps_to_its_document(api_schema, admin_token):
    # Every operation in turn (schemathesis's own pytest plugin does not run on this pytest).
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) == 14  # with GET /saved-replies and POST /requests/{reference}/assign
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=int(os.environ.get("PORTAL_FUZZ_EXAMPLES", "60")),
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def keeps_to_the_document(case):
            # positive_data_acceptance is left out: a 422 also answers business rules that no schema
            # can state (more than the policy grants, cents on a yen amount, a start after the end).
            case.call_and_validate(
                headers={"Authorization": f"Bearer {admin_token}"},
                excluded_checks=[schemathesis.checks.positive_data_acceptance],
            )

        keeps_to_the_document()
