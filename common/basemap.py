"""The pages' base map: a tile URL template is checked when the settings are read, and gives the origins
the pages' Content-Security-Policy admits for images (those hosts only).

A template is Leaflet's: `{z}`, `{x}` and `{y}` (or `{-y}`, TMS rows counted from the south), optionally
`{s}`, replaced by one of the subdomain characters, and `{r}` (`@2x` on high-density screens).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

CRS = ("wgs84", "gcj02", "bd09")  # the tiles' coordinate system (docs/operations.md, "Base map")
EXAMPLE = "e.g. https://tile.openstreetmap.org/{z}/{x}/{y}.png"
PLACEHOLDERS = {"z", "x", "y", "-y", "s", "r"}
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
# A DNS name or IPv4 address: nothing a policy or a page could read as more than one host.
_HOST = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$")


def origins(template: str, subdomains: str) -> list[str]:
    """Every `scheme://host[:port]` the template's tiles come from (one per subdomain when the host has
    `{s}`). ValueError, in words that say what to change, when it is no usable template."""
    if not template.isprintable() or " " in template:
        raise ValueError(f"a URL has no spaces or control characters: {EXAMPLE}")
    names = set(_PLACEHOLDER.findall(template))
    if unknown := sorted(names - PLACEHOLDERS):
        raise ValueError(f"{{{unknown[0]}}} is no tile placeholder: use {{z}}, {{x}}, {{y}} and {{s}} only, {EXAMPLE}")
    if not {"z", "x"} <= names or not names & {"y", "-y"}:
        raise ValueError(f"a tile URL template needs {{z}}, {{x}} and {{y}}: {EXAMPLE}")
    if "s" in names and not subdomains:
        raise ValueError("{s} needs CARGOTRACE_MAP_SUBDOMAINS, the characters it stands for (e.g. abc)")
    parts = urlsplit(template)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"the template must be an http:// or https:// URL: {EXAMPLE}")
    if any(c in parts.netloc.replace("{s}", "") for c in "@{}"):
        raise ValueError(f"only {{s}} may stand in the host, and no user name: {EXAMPLE}")
    host, _, port = parts.netloc.lower().partition(":")
    if port and not (port.isdigit() and 0 < int(port) < 65536):
        raise ValueError(f"{port!r} is no port: {EXAMPLE}")
    found: list[str] = []
    for name in [host.replace("{s}", s) for s in subdomains] if "{s}" in host else [host]:
        if not _HOST.match(name):
            raise ValueError(f"{name!r} is no host name: {EXAMPLE}")
        origin = f"{parts.scheme}://{name}{':' + port if port else ''}"
        if origin not in found:
            found.append(origin)
    return found
