"""Small helpers shared by tests that file a request and act on it in the staff console."""

from tests.journey_helpers import file_request, lookup
from tests.staff_helpers import staff_post


def filed(app, number="ORD-10001", email="alice.m@example.com", **fields) -> str:
    customer = app.test_client()
    lookup(customer, number, email)
    response = file_request(customer, number, **fields)
    assert response.status_code == 303, response.get_data(as_text=True)
    return response.headers["Location"].rsplit("/", 1)[1]


def act(client, ref, action, **fields):
    return staff_post(client, f"/staff/requests/{ref}/{action}", f"/staff/requests/{ref}", **fields)
