"""The API's errors: one JSON shape, `{"error": {"code": ..., "message": ...}}`, the socket's codes and texts."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError

from conversations import protocol
from conversations.sending import BAD_SEND, SendRefused

NOT_AUTHENTICATED = (
    "Authentication required: send 'Authorization: Bearer <token>' (create one at /account/tokens/), "
    "or log in for a session cookie."
)
INVALID_TOKEN = "The API token is invalid or has been revoked."
CSRF_FAILED = "CSRF check failed: a request authenticated by the session cookie needs an 'X-CSRFToken' header."
NOT_FOUND = "No such conversation."
BAD_BODY = 'The request body must be a JSON object: {"content": "...", "client_id": "..."}.'
BAD_PARAMETERS = "Invalid request parameters."
DUPLICATE = (
    "A message with this client_id was already sent and its answer is written: "
    "GET /api/conversations/{conversation_id} shows it."
)

CODES_BY_STATUS = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_long",
    429: "rate_limited",
}


STATUS_BY_SEND_REFUSAL = {
    protocol.BAD_REQUEST: 400,
    protocol.TOO_LONG: 413,
    protocol.BUSY: 409,
    protocol.RATE_LIMITED: 429,
    protocol.ASSISTANT_UNAVAILABLE: 409,
}


class ApiError(HttpError):
    """An error answered as JSON with its own code (`busy`, `too_long`, ...), and optional headers."""

    def __init__(self, status_code: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(status_code, message)
        self.code = code
        self.headers = headers or {}


def send_refused_error(refused: SendRefused) -> ApiError:
    """A refused send as an HTTP error: the socket's code and text, with `Retry-After` when given."""
    headers = {"Retry-After": str(refused.retry_after)} if refused.retry_after is not None else None
    return ApiError(STATUS_BY_SEND_REFUSAL.get(refused.code, 400), refused.code, refused.message, headers=headers)


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
        return respond(request, 401, "unauthorized", NOT_AUTHENTICATED)

    def on_http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
        code = CODES_BY_STATUS.get(exc.status_code, "error")
        message = BAD_BODY if exc.status_code == 400 else exc.message  # 400: ninja could not parse the body
        return respond(request, exc.status_code, code, message)

    def on_validation(request: HttpRequest, exc: ValidationError) -> HttpResponse:
        in_body = any(error.get("loc", ("",))[0] == "body" for error in exc.errors)
        return respond(request, 400, "bad_request", BAD_SEND if in_body else BAD_PARAMETERS)

    def on_not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
        return respond(request, 404, "not_found", NOT_FOUND)

    api.add_exception_handler(ApiError, on_api_error)
    api.add_exception_handler(AuthenticationError, on_authentication)
    api.add_exception_handler(HttpError, on_http_error)
    api.add_exception_handler(ValidationError, on_validation)
    api.add_exception_handler(Http404, on_not_found)
