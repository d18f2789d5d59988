"""The request context shared by the web integrations (framework-free).

Each web integration turns its framework's request into a `RequestFacts`, then
`RequestScope.begin()` sets the per-request message defaults (context ip, userAgent,
page, locale, requestId; ids from analytics.js cookies), optionally identifies the
logged-in user at most once per session, and `end()` restores what was there before.
Nothing here raises into the request: a bad header or cookie is skipped, a failing
identify function is logged.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from contextvars import Token
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from segment_client import (
    Client,
    ConfigurationError,
    MessageDefaults,
    reset_context_defaults,
    set_context_defaults,
)

from ._common import logger

__all__ = [
    "IdentifyTracker",
    "RequestFacts",
    "RequestScope",
    "WebSettings",
    "build_defaults",
    "call_identify",
    "check_identity",
    "client_ip",
    "cookie_id",
    "parse_cookie_header",
    "parse_locale",
    "send_identify",
]

#: `identify(request)` returns (user_id, traits), or None for an anonymous request.
IdentifyFunction = Callable[[Any], Any]
HeaderLookup = Callable[[str], "str | None"]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Where the identify-once marker lives in a framework session.
SESSION_KEY = "_segment_identified"
#: Longest string kept in the request context: a huge URL must not push every message
#: of the request over the 32 KB limit (which would raise at the caller's call).
MAX_FIELD = 2048
_MAX_COOKIE_ID = 256
_BARE_ID = re.compile(r"[\w.:@+=|/-]+")


# -- settings ---------------------------------------------------------------------------


@dataclass(frozen=True)
class WebSettings:
    """Request-context settings shared by the web integrations. Immutable.

    Args:
        trusted_proxies: how far to believe `X-Forwarded-For`. None or 0: not at all
            (the socket peer is the client). An int N: N proxies in front of the app,
            each appending to the header. Networks (CIDR strings, or one string): the
            client is the first address, from the right, outside them.
        identify: `identify(request) -> (user_id, traits) | None`, called on each request;
            its user id becomes the request's default `userId`, and an identify call is
            sent at most once per session (or per `identify_interval`).
        identify_interval: None: identify once per session unless the user or the traits
            change. Seconds: also again after that long.
        request_id_headers: headers whose first present value becomes `context.requestId`.
        capture_ip: False leaves `context.ip` out.
        anonymous_id_cookie, user_id_cookie: analytics.js's cookie names.
    """

    trusted_proxies: int | tuple[Network, ...] = 0
    identify: IdentifyFunction | None = None
    identify_interval: float | None = None
    request_id_headers: tuple[str, ...] = ("x-request-id", "x-correlation-id")
    capture_ip: bool = True
    anonymous_id_cookie: str = "ajs_anonymous_id"
    user_id_cookie: str = "ajs_user_id"
    tracker: IdentifyTracker = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        # The identify-once memory belongs to these settings (one per app/middleware).
        object.__setattr__(self, "tracker", IdentifyTracker(self.identify_interval))

    @classmethod
    def build(
        cls,
        *,
        trusted_proxies: object = None,
        identify: object = None,
        identify_interval: object = None,
        request_id_headers: object = None,
        capture_ip: object = True,
        anonymous_id_cookie: object = "ajs_anonymous_id",
        user_id_cookie: object = "ajs_user_id",
        name: Callable[[str], str] = str,
    ) -> WebSettings:
        """Validate settings from user configuration; errors name the setting as `name(key)`."""
        if identify is not None and not callable(identify):
            raise ConfigurationError(
                f"{name('identify')} must be a function returning (user_id, traits) or None, "
                f"got {identify!r}"
            )
        if identify_interval is not None and (
            isinstance(identify_interval, bool)
            or not isinstance(identify_interval, int | float)
            or identify_interval < 0
        ):
            raise ConfigurationError(
                f"{name('identify_interval')} must be None or seconds >= 0, "
                f"got {identify_interval!r}"
            )
        if request_id_headers is None:
            headers: tuple[str, ...] = cls.request_id_headers
        elif isinstance(request_id_headers, str) or not isinstance(request_id_headers, Iterable):
            raise ConfigurationError(
                f"{name('request_id_headers')} must be a list of header names, "
                f"got {request_id_headers!r}"
            )
        else:
            headers = tuple(str(header).lower() for header in request_id_headers)
        if not isinstance(capture_ip, bool):
            raise ConfigurationError(
                f"{name('capture_ip')} must be True or False, got {capture_ip!r}"
            )
        for key, value in (
            ("anonymous_id_cookie", anonymous_id_cookie),
            ("user_id_cookie", user_id_cookie),
        ):
            if not isinstance(value, str) or not value:
                raise ConfigurationError(f"{name(key)} must be a cookie name, got {value!r}")
        return cls(
            trusted_proxies=parse_trusted_proxies(trusted_proxies, name("trusted_proxies")),
            identify=identify,
            identify_interval=None if identify_interval is None else float(identify_interval),
            request_id_headers=headers,
            capture_ip=capture_ip,
            anonymous_id_cookie=anonymous_id_cookie,  # type: ignore[arg-type]
            user_id_cookie=user_id_cookie,  # type: ignore[arg-type]
        )


def parse_trusted_proxies(
    value: object, setting: str = "trusted_proxies"
) -> int | tuple[Network, ...]:
    """None, a proxy count, or CIDR networks (a string or a list of strings)."""
    if value is None:
        return 0
    if isinstance(value, bool):
        raise ConfigurationError(
            f"{setting} must be a proxy count or a list of networks, got {value!r}"
        )
    if isinstance(value, int):
        if value < 0:
            raise ConfigurationError(f"{setting} must be >= 0, got {value!r}")
        return value
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, Iterable):
        raise ConfigurationError(
            f"{setting} must be a proxy count or a list of networks, got {value!r}"
        )
    networks: list[Network] = []
    for item in items:
        try:
            networks.append(ipaddress.ip_network(str(item).strip(), strict=False))
        except ValueError:
            raise ConfigurationError(
                f"{setting}: {item!r} is not an IP address or CIDR network"
            ) from None
    return tuple(networks)


# -- parsing helpers (never raise) --------------------------------------------------------


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        pass
    # "1.2.3.4:5678" and "[2001:db8::1]:443" appear in some proxies' headers.
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def client_ip(
    remote_addr: str | None,
    forwarded_for: str | None,
    trusted: int | tuple[Network, ...],
) -> str | None:
    """The client's address: the socket peer unless trusted proxies vouch for the header."""
    if not forwarded_for or not trusted:
        return remote_addr
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    if isinstance(trusted, int):
        # Each of the `trusted` proxies appended the address it saw; anything further
        # left was written by the client and cannot be believed.
        if len(hops) < trusted:
            return remote_addr
        found = _address(hops[-trusted])
        return str(found) if found is not None else remote_addr
    peer = _address(remote_addr or "")
    if peer is None or not any(peer in net for net in trusted):
        return remote_addr  # the header did not come through a trusted proxy
    client: str | None = remote_addr
    for hop in reversed(hops):
        found = _address(hop)
        if found is None:
            break  # garbage: the last good address before it is as far as we can trust
        client = str(found)
        if not any(found in net for net in trusted):
            break
    return client


def cookie_id(raw: str | None) -> str | None:
    """An id from an analytics.js cookie: a JSON string (`%22abc%22`) or a bare value."""
    if not raw:
        return None
    value = unquote(raw).strip()
    if value.startswith('"'):
        try:
            decoded = json.loads(value)
        except ValueError:
            return None
        if not isinstance(decoded, str):
            return None
        value = decoded.strip()
    elif not _BARE_ID.fullmatch(value) or value in ("null", "undefined"):
        # analytics-next writes bare ids; anything outside an id's usual characters
        # is more likely a damaged cookie than an id.
        return None
    if not value or len(value) > _MAX_COOKIE_ID or not value.isprintable():
        return None
    return value


def parse_cookie_header(header: str | None, names: Iterable[str]) -> dict[str, str]:
    """The named cookies from a `Cookie` header; lenient, one bad cookie spoils nothing."""
    wanted = set(names)
    found: dict[str, str] = {}
    if not header:
        return found
    for part in header.split(";"):
        name, sep, value = part.partition("=")
        name = name.strip()
        if sep and name in wanted and name not in found:
            found[name] = value.strip()
    return found


def parse_locale(accept_language: str | None) -> str | None:
    """The preferred language tag of an `Accept-Language` header (`en-US`), or None."""
    if not accept_language:
        return None
    best: tuple[float, str] | None = None
    for item in accept_language.split(",")[:32]:
        tag, _, params = item.strip().partition(";")
        tag = tag.strip()
        if not tag or tag == "*" or len(tag) > 35:
            continue
        if not all(ch.isascii() and (ch.isalnum() or ch == "-") for ch in tag):
            continue
        quality = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                quality = float(params[2:])
            except ValueError:
                continue
        if quality > 0 and (best is None or quality > best[0]):
            best = (quality, tag)
    return best[1] if best else None


def _clip(value: str) -> str:
    return value if len(value) <= MAX_FIELD else value[:MAX_FIELD]


# -- the request context ----------------------------------------------------------------


@dataclass(frozen=True)
class RequestFacts:
    """What the integrations read from a request, framework-free.

    `header(name)` looks up a lowercase header name; `cookies` holds at least the two
    analytics.js cookies when the request has them.
    """

    scheme: str
    host: str
    path: str
    query: str
    remote_addr: str | None
    header: HeaderLookup
    cookies: Mapping[str, str]


def build_defaults(facts: RequestFacts, settings: WebSettings) -> MessageDefaults:
    """The message defaults for one request: context fields and ids from cookies."""
    context: dict[str, Any] = {}
    if settings.capture_ip:
        ip = client_ip(facts.remote_addr, facts.header("x-forwarded-for"), settings.trusted_proxies)
        if ip:
            context["ip"] = ip
    user_agent = facts.header("user-agent")
    if user_agent:
        context["userAgent"] = _clip(user_agent)
    search = f"?{facts.query}" if facts.query else ""
    page: dict[str, str] = {
        "path": _clip(facts.path),
        "search": _clip(search),
        "url": _clip(f"{facts.scheme}://{facts.host}{facts.path}{search}"),
    }
    referrer = facts.header("referer")
    if referrer:
        page["referrer"] = _clip(referrer)
    context["page"] = page
    locale = parse_locale(facts.header("accept-language"))
    if locale:
        context["locale"] = locale
    for name in settings.request_id_headers:
        request_id = facts.header(name)
        if request_id:
            context["requestId"] = _clip(request_id)
            break
    return MessageDefaults(
        user_id=cookie_id(facts.cookies.get(settings.user_id_cookie)),
        anonymous_id=cookie_id(facts.cookies.get(settings.anonymous_id_cookie)),
        context=context,
    )


# -- identify once ------------------------------------------------------------------------


def _digest(traits: Mapping[str, Any] | None) -> str:
    try:
        text = json.dumps(traits or {}, sort_keys=True, default=str)
    except (TypeError, ValueError):
        text = repr(traits)
    return hashlib.sha1(text.encode("utf-8", "replace"), usedforsecurity=False).hexdigest()[:16]


class IdentifyTracker:
    """Decides whether a user needs an identify call now. Thread-safe.

    The marker lives in the framework session when there is one (so "once per session"
    holds across processes), otherwise in a bounded in-process memory keyed by user id.
    A new user or changed traits always identify again; `interval` seconds also do.
    """

    MEMORY_SIZE = 10_000

    def __init__(self, interval: float | None = None, *, clock: Callable[[], float] = time.time):
        self.interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._memory: OrderedDict[str, tuple[str, float]] = OrderedDict()

    def _due(self, seen: object, digest: str, now: float) -> bool:
        if not isinstance(seen, list | tuple) or len(seen) != 2:
            return True
        old_digest, at = seen
        if old_digest != digest or not isinstance(at, int | float):
            return True
        return self.interval is not None and now - at >= self.interval

    def should_identify(
        self,
        user_id: str,
        traits: Mapping[str, Any] | None,
        session: MutableMapping[str, Any] | None = None,
    ) -> bool:
        """True (and remembered) when `user_id` with `traits` is due an identify call."""
        digest, now = _digest(traits), self._clock()
        if session is not None:
            marker = session.get(SESSION_KEY)
            seen = marker.get(user_id) if isinstance(marker, dict) else None
            if not self._due(seen, digest, now):
                return False
            # One entry only: a session belongs to one user at a time.
            session[SESSION_KEY] = {user_id: [digest, now]}
            return True
        with self._lock:
            if not self._due(self._memory.get(user_id), digest, now):
                self._memory.move_to_end(user_id)
                return False
            self._memory[user_id] = (digest, now)
            self._memory.move_to_end(user_id)
            while len(self._memory) > self.MEMORY_SIZE:
                self._memory.popitem(last=False)
            return True


def call_identify(settings: WebSettings, request: Any) -> Any:
    """Call the identify function; its exception is logged and gives None."""
    if settings.identify is None:
        return None
    try:
        return settings.identify(request)
    except Exception:  # noqa: BLE001 - never raise into the host application
        logger.exception("the identify function raised; request not identified")
        return None


def check_identity(result: Any) -> tuple[str, Mapping[str, Any] | None] | None:
    """Validate what an identify function returned; a bad shape is logged, gives None."""
    if result is None:
        return None
    if (
        isinstance(result, tuple)
        and len(result) == 2
        and isinstance(result[0], str | int)
        and not isinstance(result[0], bool)
        and (result[1] is None or isinstance(result[1], Mapping))
    ):
        user_id = str(result[0])
        return (user_id, result[1]) if user_id else None
    logger.warning(
        "the identify function must return (user_id, traits) or None, got %s",
        type(result).__name__,
    )
    return None


def send_identify(
    client: Callable[[], Client],
    settings: WebSettings,
    identity: tuple[str, Mapping[str, Any] | None],
    session: MutableMapping[str, Any] | None,
) -> None:
    """Send identify for `identity` when the tracker says it is due. Never raises."""
    user_id, traits = identity
    try:
        if settings.tracker.should_identify(user_id, traits, session):
            client().identify(user_id, dict(traits) if traits else None)
    except Exception:  # noqa: BLE001 - never raise into the host application
        logger.exception("could not identify user %r", user_id)


def identify_user(
    client: Callable[[], Client],
    settings: WebSettings,
    request: Any,
    session: MutableMapping[str, Any] | None,
) -> str | None:
    """Resolve the logged-in user and send identify when due; returns the user id.

    Blocking only as much as the identify function and the session are. Never raises.
    """
    identity = check_identity(call_identify(settings, request))
    if identity is None:
        return None
    send_identify(client, settings, identity, session)
    return identity[0]


class RequestScope:
    """The message defaults of one request: `begin()` at its start, `end()` at its end.

    Use from the thread or task that handles the request (a ContextVar underneath).
    """

    __slots__ = ("_token",)

    def __init__(self) -> None:
        self._token: Token[MessageDefaults | None] | None = None

    def begin(
        self, facts: RequestFacts | Callable[[], RequestFacts], settings: WebSettings
    ) -> None:
        """Set the request's defaults (context and cookie ids). Never raises."""
        try:
            if callable(facts):
                facts = facts()
            defaults = build_defaults(facts, settings)
        except Exception:  # noqa: BLE001 - never raise into the host application
            logger.exception("could not read the request context")
            defaults = MessageDefaults()
        self._token = set_context_defaults(
            user_id=defaults.user_id,
            anonymous_id=defaults.anonymous_id,
            context=defaults.context,
        )

    def set_user(self, user_id: str | None) -> None:
        """Make `user_id` (the logged-in user) the request's default userId."""
        if user_id is not None:
            # Layered over begin()'s defaults; end() restores past both.
            set_context_defaults(user_id=user_id)

    def end(self) -> None:
        """Restore the defaults in force before `begin()`. Never raises."""
        token, self._token = self._token, None
        if token is None:
            return
        try:
            reset_context_defaults(token)
        except ValueError:
            # The framework ran the end hook in another context (a copy): the request's
            # defaults died with the context they were set in, so nothing leaks.
            logger.debug("request defaults ended in another context")
