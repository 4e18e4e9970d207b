"""Host strings and base URLs: parsed once into a canonical URL, and "is this this machine?".

The Ollama host follows the official Python client's `_parse_host` (its doctests are our
fixture `host_parsing/python_parse_host_cases.json`): no scheme means `http` on port
11434, a scheme without a port means 80/443, `:port` alone means 127.0.0.1, a path is
kept (reverse proxies) without its trailing slash, IPv6 addresses are bracketed.

Where the Go server/CLI (`envconfig.Host`) differs we follow Python, because our users
point a *client* at Ollama, like the Python client does:
- `:1234` -> Go `http://:1234` (all interfaces, a server bind address); we say 127.0.0.1.
- bare `ollama.com` -> Go `https://ollama.com:443`; we say `http://ollama.com:11434`.
- an invalid port -> Go silently falls back to the default; we raise `ValueError` so the
  config layer can tell the user which value is wrong.
`OLLAMA_HOST` may be wrapped in spaces and one layer of quotes, as Go allows
(`strip_env_quotes`); settings may not (a quoted value is refused by the config layer).

Security: the same parsed URL is used to connect and to decide whether a host is on this
machine (`is_this_machine`), so a spelling cannot mean one thing to the check and another
to the connection.  Anything unclear is refused while parsing: credentials (`a@b`),
percent-encoding, IPv6 zone ids, non-decimal or shortened IPv4 (`0x7f000001`,
`2130706433`, `127.1`, `0177.0.0.1`), trailing dots, spaces and quotes inside the host.
"""

from __future__ import annotations

import ipaddress
import os
import re
from urllib.parse import urlsplit

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 11434
LOCAL_NAME = "localhost"  # the only host *name* taken to be this machine
_SCHEME_PORTS = {"http": 80, "https": 443}
_LABEL = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?")
_NUMERIC_LABEL = re.compile(r"(0[xX][0-9A-Fa-f]*|[0-9]+)")
_NOT_IN_URLS = frozenset("\\?#%\"'`<>{}|^")


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
    text = strip_env_quotes(raw or "")
    if not text:
        return f"http://{DEFAULT_HOST}:{DEFAULT_PORT}"
    scheme, rest = _split_scheme(text)
    hostport, _, path = rest.partition("/")
    default_port = _SCHEME_PORTS[scheme] if "://" in text else DEFAULT_PORT
    host, port = _split_host_port(hostport, default_port=default_port)
    return _url(scheme, host, port, _path(path, text))


def normalize_openai_base_url(raw: str) -> str:
    """An OpenAI-compatible base URL: `http://h:8000` -> `http://h:8000/v1`.

    A URL that already has a path keeps it; a missing port stays implicit (80/443).

    >>> normalize_openai_base_url("http://127.0.0.1:8000")
    'http://127.0.0.1:8000/v1'
    >>> normalize_openai_base_url("https://api.example.com/v1/")
    'https://api.example.com/v1'
    >>> normalize_openai_base_url("127.0.0.1:1234/v1/")
    'http://127.0.0.1:1234/v1'
    """
    text = raw.strip()
    if not text:
        raise ValueError("the base URL is empty")
    scheme, rest = _split_scheme(text)
    hostport, _, path = rest.partition("/")
    host, port = _split_host_port(hostport, default_port=None)
    return _url(scheme, host, port, _path(path, text) or "/v1")


def ollama_host_from_env() -> str:
    """The host `OLLAMA_HOST` names, or the default: what `ollama` itself would talk to."""
    return parse_ollama_host(os.environ.get("OLLAMA_HOST"))


def strip_env_quotes(raw: str) -> str:
    """Go's envconfig strips spaces and one layer of quotes, possibly nested in spaces."""
    text = raw.strip()
    for quote in ('"', "'"):
        if len(text) >= 2 and text[0] == quote and text[-1] == quote:
            text = text[1:-1].strip()
    return text


def is_this_machine(url: str) -> bool:
    """True when a canonical URL (from the parsers above) names this machine.

    Loopback IPv4 and IPv6 addresses, IPv4-mapped IPv6 loopback, and the name
    `localhost` exactly; nothing else (not `0.0.0.0`, not `LOCALHOST`, not `a.localhost`).

    >>> is_this_machine("http://127.0.0.2:11434"), is_this_machine("http://[::ffff:127.0.0.1]:1")
    (True, True)
    >>> is_this_machine("http://localhost.evil.example:11434"), is_this_machine("http://0.0.0.0:1")
    (False, False)
    """
    try:
        name = urlsplit(url).hostname
    except ValueError:
        return False
    netloc = urlsplit(url).netloc
    if not name or "@" in netloc:
        return False
    if netloc.split(":")[0] == LOCAL_NAME:  # exact spelling: urlsplit lower-cases names
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def is_loopback(url: str) -> bool:
    """True when `url` (an Ollama host in any form, or a full URL) stays on this machine.

    Parsed with the function the engine connects with; unparsable means "no".

    >>> is_loopback("http://127.0.0.1:11434"), is_loopback(":8080"), is_loopback("localhost")
    (True, True, True)
    >>> is_loopback("http://[::1]:8000/v1"), is_loopback("https://example.com")
    (True, False)
    """
    try:
        return is_this_machine(parse_ollama_host(url))
    except ValueError:
        return False


def is_loopback_base_url(url: str) -> bool:
    """`is_loopback` for an OpenAI-compatible base URL (parsed as the engine parses it)."""
    try:
        return is_this_machine(normalize_openai_base_url(url))
    except ValueError:
        return False


def host_name(value: str) -> str:
    """The bare host name of an Ollama host, lower-cased ("" when it cannot be parsed).

    >>> host_name(":11434"), host_name("Example.com:80"), host_name("http://[::1]:8000/v1")
    ('127.0.0.1', 'example.com', '::1')
    """
    try:
        return (urlsplit(parse_ollama_host(value)).hostname or "").lower()
    except ValueError:
        return ""


def is_loopback_host(value: str) -> bool:
    """Kept for callers that display "local" vs "remote": the same rule as `is_loopback`."""
    return is_loopback(value)


def _url(scheme: str, host: str, port: int | None, path: str) -> str:
    authority = host if port is None else f"{host}:{port}"
    return f"{scheme}://{authority}{path}"


def _path(path: str, context: str) -> str:
    """`/path` without its trailing slash ("" for none); odd characters are refused."""
    path = path.rstrip("/")
    if any(c.isspace() or c in _NOT_IN_URLS or not c.isprintable() for c in path):
        raise ValueError(f"unexpected character in the path of {context!r}")
    return f"/{path}" if path else ""


def _split_scheme(text: str) -> tuple[str, str]:
    if "://" not in text:
        return "http", text
    scheme, rest = text.split("://", 1)
    scheme = scheme.lower()
    if scheme not in _SCHEME_PORTS:
        raise ValueError(f"unsupported scheme {scheme!r} in host {text!r}: use http or https")
    return scheme, rest


def _split_host_port(hostport: str, *, default_port: int | None) -> tuple[str, int | None]:
    """Split `host[:port]`, `[v6][:port]`, bare `v6` or `:port` into a URL host and a port."""
    if "@" in hostport:
        raise ValueError(f"credentials in the host are not supported ({hostport!r}); "
                         "give host and port only")
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise ValueError(f"unclosed '[' in host {hostport!r}")
        after = hostport[end + 1 :]
        host = f"[{_ipv6(hostport[1:end], hostport)}]"
        if after and not after.startswith(":"):
            raise ValueError(f"unexpected {after!r} after ']' in host {hostport!r}")
        return host, _port(after[1:] if after else "", default_port, hostport)
    if hostport.count(":") >= 2:  # an IPv6 address without brackets has no port
        return f"[{_ipv6(hostport, hostport)}]", default_port or DEFAULT_PORT
    host, _, port_text = hostport.partition(":")
    return _host(host, hostport), _port(port_text, default_port, hostport)


def _host(host: str, context: str) -> str:
    """A host name or a dotted-quad IPv4 address, exactly as written ("" -> 127.0.0.1)."""
    if not host:
        return DEFAULT_HOST
    labels = host.split(".")
    if not all(_LABEL.fullmatch(label) for label in labels):
        raise ValueError(f"{host!r} is not a host name (host {context!r}): use letters, digits, "
                         "'-' and dots between names, without a trailing dot")
    if _NUMERIC_LABEL.fullmatch(labels[-1]):  # resolvers read this as an IPv4 address
        try:
            address = ipaddress.IPv4Address(host)
        except ValueError:
            address = None
        if address is None or str(address) != host:
            raise ValueError(f"{host!r} is not an IPv4 address (host {context!r}): write it as "
                             "four decimal numbers, e.g. 127.0.0.1")
    return host


def _ipv6(text: str, context: str) -> str:
    """An IPv6 address as written (the Python client keeps it so); anything else is refused.

    `::1:11434` is the common mistake (an IPv6 address with a port needs brackets).
    """
    try:
        if "%" in text:
            raise ValueError("zone ids are not supported")
        ipaddress.IPv6Address(text)
        return text
    except ValueError:
        raise ValueError(
            f"{text!r} is not an IPv6 address (host {context!r}); write an IPv6 "
            "address with a port as [addr]:port, e.g. [::1]:11434"
        ) from None


def _port(text: str, default: int | None, context: str) -> int | None:
    if not text:
        return default
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise ValueError(f"invalid port {text!r} in host {context!r} (0-65535)")
    return int(text)
