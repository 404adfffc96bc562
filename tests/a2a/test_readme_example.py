"""The README's A2A example runs as printed, against a real router: the Python block of its "A2A"
section, with only the router's address changed."""
import os
import re
import subprocess
import sys

README = os.path.join(os.path.dirname(__file__), "..", "..", "README.md")


def readme_example():
    text = open(README, encoding="utf-8").read()
    section = text[text.index("\n## A2A\n"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_a2a_example_runs(start_router, tmp_path):
    r = start_router()
    code = readme_example().replace("http://localhost:8080", r.url())
    assert r.url() in code, "the example no longer names http://localhost:8080"
    script = tmp_path / "example.py"
    script.write_text(code)
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["TASK_STATE_SUBMITTED", "TASK_STATE_SUBMITTED"], out.stdout
    got = r.pull_one("bob")
    assert (got["message_id"], got["message"]["content"]) == ("q-1", "book a table for two")
