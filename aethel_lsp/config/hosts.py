"""Is a configured host on this machine?  (The workspace-host security rule needs it.)

Accepts every `OLLAMA_HOST` form (`:11434`, `host:port`, `https://h/path`) and
OpenAI-style base URLs.  An empty host part means the default, 127.0.0.1.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit


def host_name(value: str) -> str:
    """The bare host name of `value`, lower-cased ("" when only a port is given).

    >>> host_name(":11434"), host_name("Example.com:80"), host_name("http://[::1]:8000/v1")
    ('', 'example.com', '::1')
    """
    text = value.strip()
    if "://" not in text:
        text = "http://" + text
    try:
        return (urlsplit(text).hostname or "").lower()
    except ValueError:
        return text.lower()


def is_loopback_host(value: str) -> bool:
    """True when `value` points at this machine (loopback, localhost, or unspecified).

    >>> is_loopback_host("http://127.0.0.1:11434"), is_loopback_host("localhost:1")
    (True, True)
    >>> is_loopback_host("https://ollama.example.com"), is_loopback_host("10.0.0.5:11434")
    (False, False)
    """
    name = host_name(value)
    if name in ("", "localhost") or name.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified
