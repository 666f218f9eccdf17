"""Serve a project's champion over HTTP with bounded, non-echoing errors.

    python -m leadscore_assets.serve --project linkedin --port 5001   # MLFLOW_TRACKING_URI as for mlflow

builds MLflow's own scoring app for `models:/leadscore-<project>@champion`
(`mlflow.pyfunc.scoring_server.init`, the app `mlflow models serve` runs: same endpoints, same
request and answer formats) and puts two layers around what MLflow does before the model sees a
request, where MLflow answers with the whole request in its message (a body that is not JSON,
params it refuses) or with a stack trace:

- `install_scoring_server_guard` wraps the scoring server's `invocations` (the function that
  parses a body and calls the model): only `application/json` bodies of at most
  `MAX_BODY_BYTES` are read, and an error MLflow forms is answered with a short message of ours
  (`"the request body is not valid JSON (Expecting ',' delimiter at line 1, column 40)"`) and
  nothing of the body. The model's own refusals (`lib/refusals.Refusal`) pass as they are.
- `BoundedRequests`, an ASGI middleware: a body over `MAX_BODY_BYTES` is answered 413 before it
  is read into memory (Content-Length, or counted while it arrives), and any 4xx/5xx answer
  that is not one of ours (no `errors` key) is replaced by a short one, so a path the guard does
  not see (or an MLflow version the guard does not recognise) still echoes nothing.

`mlflow models serve -m models:/leadscore-<project>@champion` keeps working: the model's
`load_context` installs the same guard when it is loaded by MLflow's scoring server, so there too
bodies are JSON only, bounded (after uvicorn has read them) and never echoed, as long as MLflow's
`scoring_server.invocations` has the signature the guard knows (checked; otherwise a warning in the
server log and MLflow's own behaviour). Only this entry point bounds a body before it is read and
rewrites answers formed outside `invocations`.
"""

from __future__ import annotations

import argparse
import inspect
import json
import logging
import os
from functools import wraps

from leadscore_assets.lib.scoring.refusals import Refusal

MAX_BODY_BYTES = 8 * 2**20  # ~13,000 leads of a 19-column export; `serving.MAX_LEADS` is 10,000
_DRAIN_LIMIT = 8 * MAX_BODY_BYTES  # a too-large body is read (and dropped) up to this, then the connection closed
JSON = "application/json"
_GUARD_MARK = "_leadscore_guard"
_logger = logging.getLogger(__name__)

_STATUS_MESSAGES = {
    400: "the request could not be read: send a JSON object with `dataframe_records` or `dataframe_split`",
    404: "not found: POST /invocations, GET /ping, /health or /version",
    405: "method not allowed: POST /invocations, GET /ping, /health or /version",
    413: f"the request body is larger than {MAX_BODY_BYTES // 2**20} MiB: send fewer leads per request",
    415: f"only {JSON} requests are scored (UTF-8)",
    504: "the request took longer than the server's time limit",
}


def error_body(status: int, message: str | None = None, error_code: str | None = None) -> bytes:
    """A short JSON error answer: `error_code`, `message`, `errors` (empty: no lead was read)."""
    code = error_code or {400: "BAD_REQUEST", 413: "BAD_REQUEST", 415: "BAD_REQUEST"}.get(status, "INTERNAL_ERROR"
                                                                                        if status >= 500 else "BAD_REQUEST")
    text = message or _STATUS_MESSAGES.get(status) or f"the request failed (HTTP {status})"
    return json.dumps({"error_code": code, "message": text, "errors": []}).encode()


def _json_problem(data: bytes | str) -> str | None:
    """Why `data` is not JSON, in words of the parser's (position, never content), or None."""
    try:
        json.loads(data)
    except UnicodeDecodeError:
        return "the request body is not valid UTF-8"
    except json.JSONDecodeError as err:
        return f"the request body is not valid JSON ({err.msg} at line {err.lineno}, column {err.colno})"
    except (TypeError, ValueError, RecursionError):
        return "the request body is not valid JSON"
    return None


def _reworded(err, data) -> str:
    """A short message for an MlflowException MLflow raised while reading or scoring a request."""
    problem = _json_problem(data)
    if problem:
        return problem
    text = str(getattr(err, "message", ""))
    if "Invalid parameters found" in text:
        return "the request's `params` were refused: `reasons` takes true or false"
    if "input fields" in text or "Received a list" in text or "unexpected input type" in text:
        return ("the request must be a JSON object with exactly one of `dataframe_records`, `dataframe_split`,"
                " `inputs` or `instances` (and optionally `params`)")
    return _STATUS_MESSAGES[400]


def guarded(invocations):
    """MLflow's `scoring_server.invocations(data, content_type, model, input_schema)`, bounded and
    without any part of the request in its errors (see the module docstring)."""
    from mlflow.exceptions import MlflowException
    from mlflow.protos import databricks_pb2
    from mlflow.pyfunc import scoring_server

    def answer(status: int, message: str | None = None):
        return scoring_server.InvocationsResponse(response=error_body(status, message).decode(), status=status,
                                                  mimetype=JSON)

    @wraps(invocations)
    def guarded_invocations(data, content_type, model, input_schema):
        type_parts = [p.strip().lower() for p in (content_type or "").split(";")]
        if type_parts[0] != JSON or any(p and p not in ("charset=utf-8", "charset=\"utf-8\"") for p in type_parts[1:]):
            return answer(415)
        if len(data) > MAX_BODY_BYTES:
            return answer(413)
        try:
            result = invocations(data, content_type, model, input_schema)
        except Refusal:
            raise  # the model's own: short, nothing of the request
        except MlflowException as err:
            status = err.get_http_status_code()
            code = err.error_code if err.error_code in databricks_pb2.ErrorCode.keys() else "BAD_REQUEST"
            message = _reworded(err, data) if status < 500 else "the request could not be scored (server error)"
            raise Refusal(message, [], error_code=databricks_pb2.ErrorCode.Value(code)) from None
        except Exception as err:  # MLflow's parsing failed outside its own exceptions
            _logger.error("reading a request failed: %s", type(err).__name__)
            return answer(400, _json_problem(data))
        if result.status >= 400:
            return answer(result.status)
        return result

    setattr(guarded_invocations, _GUARD_MARK, True)
    return guarded_invocations


def install_scoring_server_guard() -> bool:
    """Wrap `mlflow.pyfunc.scoring_server.invocations` (once); False, with a warning, when this MLflow's
    function is not the one the guard knows. Called by the model's `load_context` inside
    `mlflow models serve`, before MLflow builds its app, and by `app` below."""
    from mlflow.pyfunc import scoring_server

    current = getattr(scoring_server, "invocations", None)
    if current is None or getattr(current, _GUARD_MARK, False):
        return current is not None
    if list(inspect.signature(current).parameters) != ["data", "content_type", "model", "input_schema"] or \
            not hasattr(scoring_server, "InvocationsResponse"):
        _logger.warning("leadscore: MLflow's scoring_server.invocations is not the one known: requests are "
                        "not bounded and MLflow's error messages are not replaced")
        return False
    scoring_server.invocations = guarded(current)
    return True


class BoundedRequests:
    """ASGI middleware: a body over `max_body` bytes gets 413 before it is held in memory, and a
    4xx/5xx answer without an `errors` key (not formed by the model or the guard) a short one."""

    def __init__(self, app, max_body: int = MAX_BODY_BYTES):
        self.app, self.max_body = app, max_body

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        too_large = length is not None and (not length.isdigit() or int(length) > self.max_body)
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            size += len(message.get("body", b""))
            if too_large or size > self.max_body:
                too_large = True  # keep reading (and dropping) so the client reads our answer
                if size > _DRAIN_LIMIT:
                    break
            else:
                chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        if too_large:
            return await _send(send, 413, error_body(413), close=size > _DRAIN_LIMIT)
        body, replayed = b"".join(chunks), False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        start, held = None, []

        async def checked(message):
            nonlocal start
            if message["type"] == "http.response.start":
                if message["status"] < 400:
                    return await send(message)
                start = message  # an error: held until its body is seen
                return None
            if start is None or message["type"] != "http.response.body":
                return await send(message)
            held.append(message.get("body", b""))
            if message.get("more_body"):
                return None
            content = b"".join(held)
            if not _ours(content):
                content = error_body(start["status"])
            return await _send(send, start["status"], content)

        return await self.app(scope, replay, checked)


def _ours(content: bytes) -> bool:
    """An error answer the model or the guard formed: a JSON object with an `errors` list, no stack trace."""
    try:
        parsed = json.loads(content)
    except (ValueError, UnicodeDecodeError):
        return False
    return isinstance(parsed, dict) and isinstance(parsed.get("errors"), list) and "stack_trace" not in parsed


async def _send(send, status: int, content: bytes, close: bool = False) -> None:
    headers = [(b"content-type", JSON.encode()), (b"content-length", str(len(content)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": content, "more_body": False})


def app(model_uri: str):
    """MLflow's scoring app for `model_uri`, guarded and bounded (an ASGI app)."""
    import mlflow.pyfunc
    from mlflow.pyfunc import scoring_server

    install_scoring_server_guard()
    model = mlflow.pyfunc.load_model(model_uri)
    return BoundedRequests(scoring_server.init(model))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m leadscore_assets.serve", description=__doc__.split("\n\n")[0])
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--project", help="serve models:/leadscore-<project>@<alias>")
    which.add_argument("--model-uri", help="serve this model URI instead")
    parser.add_argument("--alias", default="champion")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5001)
    args = parser.parse_args(argv)
    import uvicorn

    uri = args.model_uri or f"models:/leadscore-{args.project}@{args.alias}"
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"))
    uvicorn.run(app(uri), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
