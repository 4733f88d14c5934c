"""SDK and transport failures -> one readable line for the user (BackendError) or a Retryable.

Every message names who failed: "OpenAI" for the openai type, the backend's name for a model server
("the model server “local”"), so a team with several backends knows which one to look at.
"""
from __future__ import annotations

import asyncio

import aiohttp
import httpx2
import openai

from core.backends.retry import Retryable, retry_after
from core.errors import BackendError


def cap(who: str) -> str:
    """The name at the start of a sentence."""
    return who[:1].upper() + who[1:]


def api_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
        if isinstance(err, str) and err:       # some servers (Ollama, llama.cpp) send {"error": "text"}
            return err
    return exc.message


def classify(exc: openai.APIStatusError, who: str) -> Exception:
    """An HTTP error status: 429, 408 and 5xx are retryable, everything else is final."""
    status = exc.status_code
    if status == 429:
        return Retryable(f"{cap(who)} is rate-limiting requests (429); please try again shortly",
                         retry_after(exc.response.headers))
    if status >= 500 or status == 408:
        return Retryable(f"{cap(who)} had a server error ({status}); please try again", retry_after(exc.response.headers))
    return as_backend_error(exc, who)


def transport(exc: Exception, who: str) -> Retryable | None:
    """A failure below HTTP (connect, timeout, a body cut mid-stream) as a Retryable; None if it is not one."""
    match exc:
        case openai.APITimeoutError() if isinstance(exc.__cause__, httpx2.ConnectTimeout):
            # The SDK's aiohttp transport reports a refused connection (server down) as a connect timeout.
            return Retryable(f"Could not reach {who} (connection failed)")
        case openai.APITimeoutError():
            return Retryable(f"{cap(who)} did not answer in time")
        case openai.APIConnectionError():
            return Retryable(f"Could not reach {who} (connection failed)")
        case httpx2.TimeoutException():
            return Retryable(f"{cap(who)} stopped sending mid-answer (timed out)")
        case httpx2.TransportError():
            return Retryable("The connection to the model was lost mid-answer")
        # the direct requests (core.backends.direct): a failure while the body is read
        case asyncio.TimeoutError():
            return Retryable(f"{cap(who)} stopped sending mid-answer (timed out)")
        case aiohttp.ClientError():
            return Retryable("The connection to the model was lost mid-answer")
    return None


def as_backend_error(exc: openai.APIError, who: str) -> BackendError:
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        if status == 401:
            return BackendError(f"{cap(who)} rejected the API key (401)")
        if status == 403:
            return BackendError(f"{cap(who)} refused access (403): {api_message(exc)}")
        if status == 429:
            return BackendError(f"{cap(who)} is rate-limiting requests (429); please try again shortly",
                                retryable=True)
        if status >= 500:
            return BackendError(f"{cap(who)} had a server error ({status}); please try again", retryable=True)
        return BackendError(f"{cap(who)} rejected the request ({status}): {api_message(exc)}")
    if isinstance(exc, openai.APITimeoutError):
        return BackendError(f"{cap(who)} did not answer in time", retryable=True)
    if isinstance(exc, openai.APIConnectionError):
        return BackendError(f"Could not reach {who} (connection failed)", retryable=True)
    return BackendError(f"{cap(who)} error: {exc}")
