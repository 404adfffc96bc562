"""Read the router config schema table from lib/cfg.c (shared by the docs
and CRD generators, so both follow the one table the router parses with)."""
import os
import re

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def _defines():
    """Numeric #defines of the public headers a bound may name (OWN_MAX_REPLICAS)."""
    out = {"GiB": 1024.0 ** 3}
    inc = os.path.join(ROOT, "include", "switchboard")
    for name in sorted(os.listdir(inc)):
        for k, v in re.findall(r"^#define ([A-Z_]+)\s+([0-9]+)\s*$", open(os.path.join(inc, name)).read(), re.M):
            out[k] = int(v)
    return out


def _num(expr):
    """Evaluate a table bound such as `16 * 1048576.0`, `1024 * GiB` or `OWN_MAX_REPLICAS - 1`."""
    return eval(expr.strip(), {"__builtins__": {}}, _defines())  # noqa: S307 (our own source)


def table():
    """Rows (path, lo, hi, enum values or None, ftype, reload) for the router
    fields, then for the agent fields (paths prefixed 'agents[].')."""
    src = open(os.path.join(ROOT, "lib", "cfg.c")).read()
    enums = {k: [n.strip().strip('"') for n in v.split(",") if n.strip() and n.strip() != "NULL"]
             for k, v in re.findall(r'static const char \*const (\w+)\[\] = \{([^}]*)\}', src)}
    rows = []
    for prefix, block in (("", "cfg_fields"), ("agents[].", "cfg_agent_fields")):
        body = src[src.index(f"const struct cfg_field {block}[]"):]
        body = body[:body.index("};")]
        for m in re.finditer(r'\{"([^"]+)", A?OFF\([^)]*\), ([^,]+), ([^,]+), ([^,]+), (F_[A-Z]+), ([HGR])\}', body):
            path, lo, hi, en, ftype, reload = m.groups()
            rows.append((prefix + path, _num(lo), _num(hi), enums.get(en.strip()), ftype, reload))
    return rows
