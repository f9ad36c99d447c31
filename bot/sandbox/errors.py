"""OpenAI's error answers, word for word, so clients' error handling meets the real thing.

Every message the sandbox sends lives here. Handlers raise :class:`ApiError`; the route wrapper
in ``app.py`` turns it into the JSON answer.
"""

from __future__ import annotations

import math

from aiohttp import web

from bot.sandbox.limits import Refusal, format_duration

ORGANIZATION = "org-sandbox"
_LIMITS_DOC = "Visit https://platform.openai.com/account/rate-limits to learn more."
_JSON_TYPES = {
    dict: "an object",
    list: "an array",
    str: "a string",
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    type(None): "null",
}


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = headers or {}

    def body(self) -> dict[str, object]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    def response(self) -> web.Response:
        return web.json_response(self.body(), status=self.status, headers=self.headers)


def json_type(value: object) -> str:
    return _JSON_TYPES.get(type(value), "an unknown type")


# 400: the body


def not_json() -> ApiError:
    return ApiError(
        400,
        "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
        "using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was "
        "sent was not valid JSON. If you have trouble figuring out how to fix this, please "
        "contact us through our help center at help.openai.com.)",
    )


def body_not_object(value: object) -> ApiError:
    return ApiError(
        400,
        f"Invalid type for body: expected an object, but got {json_type(value)} instead.",
        code="invalid_type",
    )


def no_model() -> ApiError:
    return ApiError(400, "you must provide a model parameter")


def missing(param: str) -> ApiError:
    return ApiError(
        400,
        f"Missing required parameter: '{param}'.",
        param=param,
        code="missing_required_parameter",
    )


def wrong_type(param: str, expected: str, value: object) -> ApiError:
    return ApiError(
        400,
        f"Invalid type for '{param}': expected {expected}, but got {json_type(value)} instead.",
        param=param,
        code="invalid_type",
    )


def empty_array(param: str) -> ApiError:
    return ApiError(
        400,
        f"Invalid '{param}': empty array. Expected an array with minimum length 1, "
        "but got an empty array instead.",
        param=param,
        code="empty_array",
    )


def below_min(param: str, minimum: float, value: float, *, integer: bool) -> ApiError:
    kind = "integer" if integer else "decimal"
    return ApiError(
        400,
        f"Invalid '{param}': {kind} below minimum value. Expected a value >= {minimum:g}, "
        f"but got {value:g} instead.",
        param=param,
        code=f"{kind}_below_min_value",
    )


def above_max(param: str, maximum: float, value: float) -> ApiError:
    return ApiError(
        400,
        f"Invalid '{param}': decimal above maximum value. Expected a value <= {maximum:g}, "
        f"but got {value:g} instead.",
        param=param,
        code="decimal_above_max_value",
    )


def bad_value(param: str, value: object, allowed: tuple[str, ...]) -> ApiError:
    quoted = [f"'{a}'" for a in allowed]
    choices = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + f", and {quoted[-1]}"
    return ApiError(
        400,
        f"Invalid value: '{value}'. Supported values are: {choices}.",
        param=param,
        code="invalid_value",
    )


def stream_options_without_stream() -> ApiError:
    return ApiError(
        400,
        "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
        param="stream_options",
        code="invalid_value",
    )


def unsupported_parameter(param: str, *, instead: str) -> ApiError:
    return ApiError(
        400,
        f"Unsupported parameter: '{param}' is not supported with this model. "
        f"Use '{instead}' instead.",
        param=param,
        code="unsupported_parameter",
    )


def unsupported_temperature(value: float) -> ApiError:
    """The value as the client sent it: 0.2, 0, 1.5."""
    return ApiError(
        400,
        f"Unsupported value: 'temperature' does not support {value} with this model. "
        "Only the default (1) value is supported.",
        param="temperature",
        code="unsupported_value",
    )


def no_vision(param: str) -> ApiError:
    """An image sent to a model that cannot see: OpenAI's words."""
    return ApiError(
        400,
        "Invalid content type. image_url is only supported by certain models.",
        param=param,
    )


def invalid_image_url() -> ApiError:
    """The sandbox is offline: it takes images inline only."""
    return ApiError(
        400,
        "The sandbox takes images as base64 data URLs only (data:image/png;base64,...).",
        code="invalid_image_url",
    )


def invalid_image() -> ApiError:
    return ApiError(
        400,
        "You uploaded an unsupported image. Please make sure your image has of one the "
        "following formats: ['png', 'jpeg', 'gif', 'webp'].",
        code="invalid_image_format",
    )


def context_length_chat(window: int, prompt: int, completion: int | None) -> ApiError:
    if completion is None:
        message = (
            f"This model's maximum context length is {window} tokens. However, your messages "
            f"resulted in {prompt} tokens. Please reduce the length of the messages."
        )
    else:
        message = (
            f"This model's maximum context length is {window} tokens. However, you requested "
            f"{prompt + completion} tokens ({prompt} in the messages, {completion} in the "
            "completion). Please reduce the length of the messages or completion."
        )
    return ApiError(400, message, param="messages", code="context_length_exceeded")


def context_length_legacy(window: int, prompt: int, completion: int) -> ApiError:
    return ApiError(
        400,
        f"This model's maximum context length is {window} tokens, however you requested "
        f"{prompt + completion} tokens ({prompt} in your prompt; {completion} for the "
        "completion). Please reduce your prompt; or completion length.",
        code="context_length_exceeded",
    )


# 401, 404, 405


def no_api_key() -> ApiError:
    return ApiError(
        401,
        "You didn't provide an API key. You need to provide your API key in an Authorization "
        "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password "
        "field (with blank username) if you're accessing the API from your browser and are "
        "prompted for a username and password. You can obtain an API key from "
        "https://platform.openai.com/account/api-keys.",
    )


def mask_key(key: str) -> str:
    return f"{key[:5]}***{key[-2:]}" if len(key) >= 8 else "***"


def wrong_api_key(key: str) -> ApiError:
    return ApiError(
        401,
        f"Incorrect API key provided: {mask_key(key)}. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
        code="invalid_api_key",
    )


def model_not_found(model: str) -> ApiError:
    return ApiError(
        404,
        f"The model `{model}` does not exist or you do not have access to it.",
        code="model_not_found",
    )


def not_a_chat_model() -> ApiError:
    return ApiError(
        404,
        "This is not a chat model and thus not supported in the v1/chat/completions endpoint. "
        "Did you mean to use v1/completions?",
    )


def chat_model_on_completions() -> ApiError:
    return ApiError(
        404,
        "This is a chat model and not supported in the v1/completions endpoint. "
        "Did you mean to use v1/chat/completions?",
    )


def invalid_url(method: str, path: str) -> ApiError:
    return ApiError(404, f"Invalid URL ({method} {path})")


def invalid_method(method: str, path: str) -> ApiError:
    return ApiError(405, f"Invalid method for URL ({method} {path})")


# 429


def rate_limited(model: str, refusal: Refusal) -> ApiError:
    where = f"for {model} in organization {ORGANIZATION} on {refusal.kind.label}"
    if refusal.too_large:
        return ApiError(
            429,
            f"Request too large {where}: Limit {refusal.limit}, Requested {refusal.requested}. "
            f"The input or output tokens must be reduced in order to run successfully. "
            f"{_LIMITS_DOC}",
            type=refusal.kind.type,
            code="rate_limit_exceeded",
        )
    return ApiError(
        429,
        f"Rate limit reached {where}: Limit {refusal.limit}, Used {refusal.used}, "
        f"Requested {refusal.requested}. Please try again in {format_duration(refusal.wait)}. "
        f"{_LIMITS_DOC}",
        type=refusal.kind.type,
        code="rate_limit_exceeded",
        headers={
            "retry-after": str(max(1, math.ceil(refusal.wait - 1e-9))),
            "retry-after-ms": str(max(1, math.ceil(refusal.wait * 1000 - 1e-6))),
        },
    )


def quota_exceeded() -> ApiError:
    return ApiError(
        429,
        "You exceeded your current quota, please check your plan and billing details. For more "
        "information on this error, read the docs: "
        "https://platform.openai.com/docs/guides/error-codes/api-errors.",
        type="insufficient_quota",
        code="insufficient_quota",
    )


# 5xx faults


def server_error() -> ApiError:
    return ApiError(
        500,
        "The server had an error while processing your request. Sorry about that!",
        type="server_error",
    )


def overloaded() -> ApiError:
    return ApiError(
        503, "The engine is currently overloaded, please try again later.", type="server_error"
    )
