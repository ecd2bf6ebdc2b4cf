"""The API's errors: one JSON shape, `{"error": {"code": ..., "message": ...}}`, the socket's codes and texts."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError

from conversations import actions, approvals, sending
from conversations.actions import Refused

NOT_AUTHENTICATED = (
    "Authentication required: send 'Authorization: Bearer <token>' (create one at /account/tokens/), "
    "or log in for a session cookie."
)
INVALID_TOKEN = "The API token is invalid or has been revoked."
CSRF_FAILED = "CSRF check failed: a request authenticated by the session cookie needs an 'X-CSRFToken' header."
INSUFFICIENT_SCOPE_CODE = "insufficient_scope"
INSUFFICIENT_SCOPE = (
    "This API token lacks the '{scope}' scope that this request needs: create a token with it at /account/tokens/."
)
UNSCOPED_ROUTE = "This route declares no scope, so no API token may use it."
NOT_FOUND = "No such conversation."
BAD_BODY = 'The request body must be a JSON object: {"content": "...", "client_id": "..."}.'
BAD_TITLE_BODY = (
    'The request body must be a JSON object: {"title": "..."}, the title 1 to 200 characters once trimmed, '
    'and/or {"model": "..."}, one of the assistant\'s models.'
)
DUPLICATE_CODE = "duplicate"
BAD_PARAMETERS = "Invalid request parameters."
DUPLICATE = (
    "A message with this client_id was already sent and its answer is written: "
    "GET /api/conversations/{conversation_id} shows it."
)

CODES_BY_STATUS = {
    400: actions.BAD_REQUEST,
    401: "unauthorized",
    403: "forbidden",
    404: actions.NOT_FOUND,
    405: "method_not_allowed",
    409: "conflict",
    413: actions.TOO_LONG,
    429: actions.RATE_LIMITED,
}


# A refused action as an HTTP status: the one table from `actions.Refused` to this wire.
STATUS_BY_REFUSAL = {
    actions.BAD_REQUEST: 400,
    actions.NOT_FOUND: 404,
    actions.TOO_LONG: 413,
    actions.BUSY: 409,
    actions.ALREADY_DECIDED: 409,
    actions.ASSISTANT_UNAVAILABLE: 409,
    actions.RATE_LIMITED: 429,
    actions.QUOTA_EXCEEDED: 429,
    actions.RESTARTING: 503,
    actions.MODEL_UNAVAILABLE: 400,
}

# What a body that does not parse, or does not fit its schema, is told, by route: the method and
# the URL's name (the first operation's function name on that path); a route not listed here
# answers with the send's text.
BAD_BODY_BY_ROUTE = {
    ("POST", "messages_send"): sending.BAD_SEND,
    ("POST", "messages_edit"): sending.BAD_EDIT,
    ("POST", "answers_regenerate"): sending.BAD_REGENERATE,
    ("POST", "conversations_branch"): sending.BAD_BRANCH,
    ("PATCH", "conversations_detail"): BAD_TITLE_BODY,
    ("POST", "approvals_decide"): approvals.BAD_DECISION,
}


class ApiError(HttpError):
    """An error answered as JSON with its own code (`busy`, `too_long`, ...), and optional headers."""

    def __init__(self, status_code: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(status_code, message)
        self.code = code
        self.headers = headers or {}


def refused_error(refused: Refused) -> ApiError:
    """A refused action as an HTTP error: the socket's code and text, with `Retry-After` when given."""
    headers = {"Retry-After": str(refused.retry_after)} if refused.retry_after is not None else None
    return ApiError(STATUS_BY_REFUSAL[refused.code], refused.code, refused.message, headers=headers)


def bad_body_message(request: HttpRequest) -> str:
    """What a bad body of this request's route is told: what that route takes."""
    match = getattr(request, "resolver_match", None)
    return BAD_BODY_BY_ROUTE.get((request.method or "", getattr(match, "url_name", None) or ""), BAD_BODY)


def error_body(code: str, message: str) -> dict[str, dict[str, str]]:
    """The JSON body of every error answer."""
    return {"error": {"code": code, "message": message}}


def install_error_handlers(api: NinjaAPI) -> None:
    """Answer every error of `api` in the one JSON shape."""

    def respond(request: HttpRequest, status: int, code: str, message: str) -> HttpResponse:
        response = api.create_response(request, error_body(code, message), status=status)
        if status == 401:
            response["WWW-Authenticate"] = 'Bearer realm="api"'
        return response

    def on_api_error(request: HttpRequest, exc: ApiError) -> HttpResponse:
        response = respond(request, exc.status_code, exc.code, exc.message)
        for name, value in exc.headers.items():
            response[name] = value
        return response

    def on_authentication(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
        return respond(request, 401, CODES_BY_STATUS[401], NOT_AUTHENTICATED)

    def on_http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
        code = CODES_BY_STATUS.get(exc.status_code, "error")
        message = bad_body_message(request) if exc.status_code == 400 else exc.message  # 400: an unparsable body
        return respond(request, exc.status_code, code, message)

    def on_validation(request: HttpRequest, exc: ValidationError) -> HttpResponse:
        in_body = any(error.get("loc", ("",))[0] == "body" for error in exc.errors)
        return respond(request, 400, actions.BAD_REQUEST, bad_body_message(request) if in_body else BAD_PARAMETERS)

    def on_not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
        return respond(request, 404, actions.NOT_FOUND, NOT_FOUND)

    api.add_exception_handler(ApiError, on_api_error)
    api.add_exception_handler(AuthenticationError, on_authentication)
    api.add_exception_handler(HttpError, on_http_error)
    api.add_exception_handler(ValidationError, on_validation)
    api.add_exception_handler(Http404, on_not_found)
