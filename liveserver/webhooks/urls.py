"""Which receiver URLs a webhook may point at: http(s) only, and never loopback, private,
link-local, multicast or reserved addresses (SSRF into the deployment's own network),
unless LIVESERVER_WEBHOOKS_ALLOW_PRIVATE=1. Checked when a hook is created and again
before every attempt (a name may resolve elsewhere later)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit


class BadURL(ValueError):
    pass


def _public(addr: str) -> bool:
    ip = ipaddress.ip_address(addr.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_reserved
                or ip.is_unspecified or not ip.is_global)


def parse(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise BadURL("url must be http:// or https://")
    if not parts.hostname:
        raise BadURL("url has no host")
    if parts.username or parts.password:
        raise BadURL("url must not carry credentials")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise BadURL("url has a bad port") from None
    return parts.hostname, port


async def check(url: str, allow_private: bool) -> None:
    """Raise BadURL when `url` may not receive webhooks."""
    host, port = parse(url)
    if allow_private:
        return
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        raise BadURL(f"cannot resolve {host!r}") from None
    for info in infos:
        if not _public(str(info[4][0])):
            raise BadURL(f"{host!r} resolves to a loopback/private/link-local address; "
                         "set LIVESERVER_WEBHOOKS_ALLOW_PRIVATE=1 to allow it")
