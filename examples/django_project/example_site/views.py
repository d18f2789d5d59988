"""Views of the example site: each tracks one event; the middleware supplies the rest."""

from typing import Any

from django.http import HttpRequest, JsonResponse

from segment_client.integrations.django import get_client


def identify_user(request: HttpRequest) -> tuple[str, dict[str, Any]] | None:
    """SEGMENT['IDENTIFY']: who is logged in. With django.contrib.auth this would read
    request.user (see segment_client.integrations.django.authenticated_user)."""
    user_id = request.session.get("user_id")
    if not user_id:
        return None
    return user_id, {"plan": request.session.get("plan", "free")}


def login(request: HttpRequest) -> JsonResponse:
    request.session["user_id"] = request.GET["user"]
    request.session["plan"] = request.GET.get("plan", "free")
    return JsonResponse({"ok": True})


def signup(request: HttpRequest) -> JsonResponse:
    # No ids here: the logged-in user, or analytics.js's cookies, fill them in.
    message_id = get_client().track(event="Signed Up", properties={"source": "sync"})
    return JsonResponse({"messageId": message_id})


async def async_signup(request: HttpRequest) -> JsonResponse:
    message_id = get_client().track(event="Signed Up", properties={"source": "async"})
    return JsonResponse({"messageId": message_id})
