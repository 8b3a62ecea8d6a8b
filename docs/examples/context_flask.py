"""Flask: before_request enters audit_context, teardown_request leaves it."""

import os
import uuid

import flask
import sqlalchemy as sa
from recipe_models import Base, Order, recorded
from sqlalchemy.engine import make_url
from sqlalchemy.orm import sessionmaker

from sqlalchemy_postgresql_audit import audit_context, current_audit_values

url = make_url(os.environ["DATABASE_URL"])
engine = sa.create_engine(url.set(drivername="postgresql+psycopg"))  # psycopg 3 here
Base.metadata.create_all(engine)
sessions = sessionmaker(engine)

# --8<-- [start:app]
app = flask.Flask(__name__)


@app.before_request
def enter_audit_context() -> None:
    user = flask.request.headers.get("Authorization", "").removeprefix("Bearer ")
    try:  # the caller's X-Request-Id when it is a UUID, else a fresh one
        request_id = uuid.UUID(flask.request.headers.get("X-Request-Id", ""))
    except ValueError:
        request_id = uuid.uuid4()
    flask.g.audit_context = audit_context(username=user or None, request_id=request_id)
    flask.g.audit_context.__enter__()


@app.teardown_request
def exit_audit_context(_error: BaseException | None) -> None:
    context = flask.g.pop("audit_context", None)
    if context is not None:
        context.__exit__(None, None, None)


@app.post("/orders")
def create_order() -> dict[str, int]:
    with sessions.begin() as session:
        order = Order(item=flask.request.args["item"])
        session.add(order)
        session.flush()
        return {"id": order.id}
# --8<-- [end:app]

# --8<-- [start:call]
client = app.test_client()
request_id = uuid.uuid4()
response = client.post("/orders?item=book",
                       headers={"Authorization": "Bearer alice", "X-Request-Id": str(request_id)})
assert response.status_code == 200
assert recorded() == [("book", "alice", request_id)]
assert current_audit_values() == {}  # nothing outlives the request
# --8<-- [end:call]

odd = client.post("/orders?item=cup",
                  headers={"Authorization": "Bearer bob", "X-Request-Id": "not-a-uuid"})
assert odd.status_code == 200
assert recorded()[-1][:2] == ("cup", "bob")

# Without a user the required setting is missing: the write fails, it does not go unaudited.
refused = client.post("/orders?item=pen")  # Flask logs the IntegrityError
assert refused.status_code == 500
assert [row[0] for row in recorded()] == ["book", "cup"]
engine.dispose()
