"""Several routers acting as one (docs/cluster.md), on local processes: what each router says about
the assignment (its ordinal, the replica count, the epoch) and which ordinal owns each agent."""
import json

from conftest import Router


def status(r):
    s, _, body = r.admin("GET", "/v1/status")
    assert s == 200, body
    return json.loads(body)


def owners(r):
    s, _, body = r.data("GET", "/v1/agents")
    assert s == 200, body
    return {a["id"]: a["owner"] for a in json.loads(body)["agents"]}


def test_router_reports_its_ordinal_and_each_agents_owner(tmpdir_path):
    """The owner comes from rendezvous hashing of the agent id over the replica count (pinned vectors:
    the operator computes the same), and a hot change of cluster.replicas moves the epoch and the owners
    without a restart; the ordinal is the router's own and restart-class."""
    r = Router(tmpdir_path, "cluster:\n  replicas: 3\n  ordinal: 1\n").start()
    try:
        st = status(r)
        assert st["cluster"]["ordinal"] == 1 and st["cluster"]["replicas"] == 3
        epoch3 = st["cluster"]["epoch"]
        assert epoch3 == "006403b06861ff04"  # own_epoch(3), as test_lib pins it
        assert owners(r) == {"alice": 2, "bob": 2}

        with open(r.config) as f:
            text = f.read()
        with open(r.config, "w") as f:
            f.write(text.replace("replicas: 3", "replicas: 5"))
        s, _, body = r._req(r.admin_port, "POST", "/admin/reload", timeout=10)
        assert s == 200 and json.loads(body)["result"] == "applied", body
        st = status(r)
        assert st["cluster"]["replicas"] == 5 and st["cluster"]["epoch"] != epoch3
        assert owners(r) == {"alice": 2, "bob": 4}

        with open(r.config, "w") as f:
            f.write(text.replace("ordinal: 1", "ordinal: 2"))
        s, _, body = r._req(r.admin_port, "POST", "/admin/reload", timeout=10)
        assert s == 409 and "cluster.ordinal" in json.loads(body)["reason"], body
    finally:
        r.stop()
