"""Metrics exposition (checked by promtool) and the config command line."""
import os
import subprocess

from conftest import REL_BIN, msg


def test_promtool_accepts_metrics(router):
    router.send(msg(conversation_id="c"))
    router.send(msg(performative="bogus"))
    got = router.pull("bob")
    router.ack("bob", [m["message_id"] for m in got["messages"]])
    text = router.metrics()
    for name in ["switchboard_router_messages_received_total 2",
                 "switchboard_router_messages_routed_total 1",
                 "switchboard_router_messages_delivered_total 1",
                 'switchboard_router_messages_failed_total{reason="invalid_message"} 1',
                 "switchboard_router_routing_duration_seconds_bucket",
                 'switchboard_router_queue_depth{agent="bob"} 0',
                 "switchboard_router_active_conversations 1",
                 'switchboard_router_agents{state="Running"} 2',
                 "switchboard_router_database_size_bytes",
                 "switchboard_router_resident_memory_bytes",
                 "switchboard_router_build_info{version="]:
        assert name in text, name
    p = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.strip() == "" and p.stderr.strip() == "", p.stdout + p.stderr


def test_check_config_reports_every_problem(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("performance:\n  inboundQueueSize: 5\n  batchSize: 10\n  colour: red\n"
                   "delivery:\n  maxRetries: many\n")
    p = subprocess.run([REL_BIN, "--check-config", str(bad)], capture_output=True, text=True)
    assert p.returncode == 1
    assert "error: performance.colour: unknown field" in p.stdout
    assert "error: delivery.maxRetries: expected an integer, got string" in p.stdout
    bad.write_text("performance:\n  inboundQueueSize: 5\n  batchSize: 10\n")
    p = subprocess.run([REL_BIN, "--check-config", str(bad)], capture_output=True, text=True)
    assert p.returncode == 1
    assert "error: performance.inboundQueueSize: must be at least 2x performance.batchSize" in p.stdout
    good = tmp_path / "good.yaml"
    good.write_text("profile: development\nagents: [{id: x}]\n")
    p = subprocess.run([REL_BIN, "--check-config", str(good)], capture_output=True, text=True)
    assert p.returncode == 0 and "ok (0 errors" in p.stdout


def test_print_config_round_trips(tmp_path):
    p = subprocess.run([REL_BIN, "--print-config"], capture_output=True, text=True)
    assert p.returncode == 0 and "profile: development" in p.stdout and "id: alice" in p.stdout
    printed = tmp_path / "printed.yaml"
    printed.write_text(p.stdout)
    q = subprocess.run([REL_BIN, "--check-config", str(printed)], capture_output=True, text=True)
    assert q.returncode == 0, q.stdout


def test_invalid_config_does_not_start(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("storage: {sync: maybe}\n")
    p = subprocess.run([REL_BIN, "--config", str(bad)], capture_output=True, text=True, timeout=10)
    assert p.returncode == 1
    assert '"field":"storage.sync"' in p.stderr


def test_shipped_sample_configs_are_valid():
    root = os.path.join(os.path.dirname(__file__), "..", "..", "config")
    samples = sorted(f for f in os.listdir(root) if f.endswith(".yaml"))
    assert samples, "no sample configs under config/"
    for name in samples:
        p = subprocess.run([REL_BIN, "--check-config", os.path.join(root, name)], capture_output=True, text=True)
        assert p.returncode == 0, name + ":\n" + p.stdout
        assert "0 errors" in p.stdout
