"""Ollama host strings: the `OLLAMA_HOST` forms Ollama accepts, turned into one base URL.

The reference is the official Python client's `_parse_host` (its doctests are our
fixture `host_parsing/python_parse_host_cases.json`): no scheme means `http` on port
11434, a scheme without a port means 80/443, `:port` alone means 127.0.0.1, a path is
kept (reverse proxies) without its trailing slash, IPv6 addresses are bracketed.

Where the Go server/CLI (`envconfig.Host`) differs we follow Python, because our users
point a *client* at Ollama, like the Python client does:
- `:1234` -> Go `http://:1234` (all interfaces, a server bind address); we say 127.0.0.1.
- bare `ollama.com` -> Go `https://ollama.com:443`; we say `http://ollama.com:11434`.
- an invalid port -> Go silently falls back to the default; we raise `ValueError` so the
  config layer can tell the user which value is wrong.
We do take two Go leniencies that cost nothing: surrounding spaces and quotes are
stripped (`" '1.2.3.4' "`), and an unbracketed IPv6 address (`::1`) is accepted.
"""

from __future__ import annotations

import ipaddress
import os
from urllib.parse import urlsplit

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 11434
_SCHEME_PORTS = {"http": 80, "https": 443}


def parse_ollama_host(raw: str | None) -> str:
    """Normalize an `OLLAMA_HOST`-style string into `scheme://host:port[/path]`.

    >>> parse_ollama_host(None)
    'http://127.0.0.1:11434'
    >>> parse_ollama_host(":56789")
    'http://127.0.0.1:56789'
    >>> parse_ollama_host("example.com")
    'http://example.com:11434'
    >>> parse_ollama_host("https://example.com")
    'https://example.com:443'
    >>> parse_ollama_host("example.com:56789/path/")
    'http://example.com:56789/path'
    >>> parse_ollama_host("[::1]:1337")
    'http://[::1]:1337'
    >>> parse_ollama_host("::1")
    'http://[::1]:11434'
    >>> parse_ollama_host(" '1.2.3.4' ")
    'http://1.2.3.4:11434'
    """
    text = _strip_quotes(raw or "")
    if not text:
        return f"http://{DEFAULT_HOST}:{DEFAULT_PORT}"
    scheme, rest = _split_scheme(text)
    hostport, _, path = rest.partition("/")
    default_port = _SCHEME_PORTS[scheme] if "://" in text else DEFAULT_PORT
    host, port = _split_host_port(hostport, default_port=default_port)
    path = path.rstrip("/")
    suffix = f"/{path}" if path else ""
    return f"{scheme}://{host}:{port}{suffix}"


def ollama_host_from_env() -> str:
    """The host `OLLAMA_HOST` names, or the default: what `ollama` itself would talk to."""
    return parse_ollama_host(os.environ.get("OLLAMA_HOST"))


def is_loopback(url: str) -> bool:
    """True when `url` (any host form, with or without scheme) stays on this machine.

    The server refuses a non-loopback host that comes from a workspace file, because a
    repository must not be able to send the user's code elsewhere.

    >>> is_loopback("http://127.0.0.1:11434"), is_loopback(":8080"), is_loopback("localhost")
    (True, True, True)
    >>> is_loopback("http://[::1]:8000/v1"), is_loopback("https://example.com")
    (True, False)
    """
    try:
        normalized = url.strip() if "://" in url else parse_ollama_host(url)
        hostname = urlsplit(normalized).hostname or ""
    except ValueError:
        return False
    hostname = hostname.rstrip(".").lower()
    if hostname == "localhost" or hostname.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def _strip_quotes(raw: str) -> str:
    """Go's envconfig strips spaces and one layer of quotes, possibly nested in spaces."""
    text = raw.strip()
    for quote in ('"', "'"):
        if len(text) >= 2 and text[0] == quote and text[-1] == quote:
            text = text[1:-1].strip()
    return text


def _split_scheme(text: str) -> tuple[str, str]:
    if "://" not in text:
        return "http", text
    scheme, rest = text.split("://", 1)
    scheme = scheme.lower()
    if scheme not in _SCHEME_PORTS:
        raise ValueError(f"unsupported scheme {scheme!r} in host {text!r}: use http or https")
    return scheme, rest


def _split_host_port(hostport: str, *, default_port: int) -> tuple[str, int]:
    """Split `host[:port]`, `[v6][:port]`, bare `v6` or `:port` into a URL host and a port."""
    if "@" in hostport:
        raise ValueError(f"credentials in the Ollama host are not supported ({hostport!r}); "
                         "give host and port only")
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise ValueError(f"unclosed '[' in Ollama host {hostport!r}")
        host, after = hostport[: end + 1], hostport[end + 1 :]
        _ipv6(host[1:-1], hostport)
        if after and not after.startswith(":"):
            raise ValueError(f"unexpected {after!r} after ']' in Ollama host {hostport!r}")
        port_text = after[1:] if after.startswith(":") else ""
        return host, _port(port_text, default_port, hostport)
    if hostport.count(":") >= 2:  # an IPv6 address without brackets has no port
        _ipv6(hostport, hostport)
        return f"[{hostport}]", default_port
    host, _, port_text = hostport.partition(":")
    if any(c.isspace() or c in _NOT_IN_HOSTS or not c.isprintable() for c in host):
        raise ValueError(f"{host!r} is not a host name (Ollama host {hostport!r})")
    return host or DEFAULT_HOST, _port(port_text, default_port, hostport)


_NOT_IN_HOSTS = frozenset("@?#\\[]{}<>|^`\"'")


def _ipv6(text: str, context: str) -> None:
    """Refuse what is not an IPv6 address, so httpx never sees an invalid URL.

    `::1:11434` is the common mistake (an IPv6 address with a port needs brackets).
    """
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        raise ValueError(
            f"{text!r} is not an IPv6 address (Ollama host {context!r}); write an IPv6 "
            "address with a port as [addr]:port, e.g. [::1]:11434"
        ) from None


def _port(text: str, default: int, context: str) -> int:
    if not text:
        return default
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise ValueError(f"invalid port {text!r} in Ollama host {context!r} (0-65535)")
    return int(text)


# Is a configured host on this machine?  (The workspace-host security rule needs it.)
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
