"""FACEBOOK_GRAPH_URL: the Graph API base URL the events path is appended to, and the rule it must keep.

HTTPS, except loopback for local runs and tests and host.docker.internal under `sam local`; a plain path
prefix (a proxy) is allowed. Whatever could send the request elsewhere than the URL checked is refused
(README, "Configuration").
"""

from __future__ import annotations

import string
from ipaddress import IPv4Address, IPv6Address, ip_address
from urllib.parse import SplitResult, urlsplit

from forwarder.variables import SettingsError

_LOOPBACK_HOSTS = {"localhost"}
# Under `sam local` (which sets AWS_SAM_LOCAL=true in its container) the host's stand-ins are reached by this
# name; it is never a loopback address, so http:// to it is allowed there and nowhere else.
_SAM_LOCAL_HOST = "host.docker.internal"
# What a base URL `scheme://host[:port][/path]` may hold: RFC 3986's unreserved characters, "/" and, outside
# the path, ":" and the "[" "]" around an IPv6 address. Anything else, such as whitespace, control
# characters, "?", "#", ";", "%", "@" or a backslash, could send the request elsewhere than the URL checked:
# urlsplit drops tabs and newlines before splitting, and keeps ";params" in the path.
_PATH_CHARS = frozenset(string.ascii_letters + string.digits + "-._~" + "/")
_BASE_URL_CHARS = _PATH_CHARS | frozenset(":[]")
# A host name label (RFC 1123: letters, digits, hyphens; an internationalised name in its punycode form).
_LABEL_CHARS = frozenset(string.ascii_lowercase + string.digits + "-")
_GRAPH_URL_RULE = (
    "FACEBOOK_GRAPH_URL must be https://host[:port][/path] (http:// only on loopback, or to host.docker.internal "
    "under sam local), with a port from 1 to "
    "65535, a path of letters, digits, '-', '.', '_', '~' and '/', and no credentials, query, fragment, "
    "';' parameters, whitespace or control characters"
)


def graph_base_url(raw: str, sam_local: bool = False) -> str:
    """The Graph API base URL without its trailing slash; the events path is appended to it.

    HTTPS only, except an explicit loopback base URL for local runs and tests, and host.docker.internal
    when `sam_local` (the function runs in `sam local`'s container); a plain path prefix (a proxy such as
    https://proxy.example.com/graph) is allowed. Raises SettingsError otherwise.
    """
    url = raw.strip().rstrip("/")
    parts = _base_url_parts(url)
    if parts is None or not (
        parts.scheme == "https" or (parts.scheme == "http" and _plain_http_allowed(parts.hostname or "", sam_local))
    ):
        raise SettingsError(_GRAPH_URL_RULE)
    return url


def _plain_http_allowed(host: str, sam_local: bool) -> bool:
    return _is_loopback(host) or (sam_local and host == _SAM_LOCAL_HOST)


def _base_url_parts(url: str) -> SplitResult | None:
    """`scheme://host[:port][/path]` split, or None when the URL holds anything else."""
    if not set(url) <= _BASE_URL_CHARS:
        return None
    try:
        parts = urlsplit(url)
        port = parts.port  # ValueError, quoting the port, when it is not a number or beyond 65535
    except ValueError:  # also from urlsplit, for an unbalanced "[" or "]"; its text is not kept
        return None
    if port == 0 or not parts.hostname or not _is_host(parts.hostname):
        return None
    # The authority is the host and port and nothing else (urlsplit ignores text after an IPv6 "]").
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    if parts.netloc.lower() != (host if port is None else f"{host}:{port}"):
        return None
    # requests collapses "." and ".." segments (moving the path elsewhere), and many servers collapse "//".
    segments = parts.path.split("/")[1:]
    if not set(parts.path) <= _PATH_CHARS or any(segment in ("", ".", "..") for segment in segments):
        return None
    return parts


def _is_host(host: str) -> bool:
    """A DNS name of non-empty RFC 1123 labels, or an IP address (urlsplit lower-cases and unbrackets it)."""
    return all(label and set(label) <= _LABEL_CHARS for label in host.split(".")) or _ip(host) is not None


def _is_loopback(host: str) -> bool:
    return host in _LOOPBACK_HOSTS or ((address := _ip(host)) is not None and address.is_loopback)


def _ip(host: str) -> IPv4Address | IPv6Address | None:
    try:
        return ip_address(host)
    except ValueError:
        return None
