#!/usr/bin/env python3
"""docs/api/openapi.yaml names exactly the routes the router serves (make lint).

Reads the route tables of router/api.c (api_routes, the data port) and router/admin.c (admin_routes)
and compares them, method and path, with the document's operations; each operation's tag must be its
port. The internal peer routes (api_peer_routes) are left out of the document on purpose.
"""
import os
import re
import sys

import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def routes(path, table):
    src = open(os.path.join(ROOT, path)).read()
    body = re.search(r"const struct http_route %s\[\] = \{(.*?)\n\};" % table, src, re.S).group(1)
    out = set()
    for method, pattern in re.findall(r'\{"([A-Z]+)", "([^"]+)", \w+\}', body):
        n = iter(range(10))
        out.add((method, re.sub(r"\{\}", lambda _m: "{%d}" % next(n), pattern)))
    return out


def main():
    doc = yaml.safe_load(open(os.path.join(ROOT, "docs", "api", "openapi.yaml")))
    want = {"data": routes("router/api.c", "api_routes"), "admin": routes("router/admin.c", "admin_routes")}
    have = {"data": set(), "admin": set()}
    bad = []
    for path, item in doc["paths"].items():
        n = iter(range(10))
        norm = re.sub(r"\{[^}]+\}", lambda _m: "{%d}" % next(n), path)
        for method, op in item.items():
            if method not in ("get", "post", "put", "delete", "patch"):
                continue
            tags = op.get("tags") or []
            if len(tags) != 1 or tags[0] not in have:
                bad.append(f"{method.upper()} {path}: tag it data or admin")
                continue
            have[tags[0]].add((method.upper(), norm))
    for port in want:
        for m, p in sorted(want[port] - have[port]):
            bad.append(f"{port} port serves {m} {p}, docs/api/openapi.yaml does not describe it")
        for m, p in sorted(have[port] - want[port]):
            bad.append(f"docs/api/openapi.yaml describes {m} {p} on the {port} port, which does not serve it")
    for b in bad:
        print("check-openapi:", b)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
