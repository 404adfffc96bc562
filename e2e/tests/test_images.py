"""`make images` (scripts/images.sh): both OCI images build without a daemon, run as the non-root user
65532, carry every library their binary loads (the binaries run inside the unpacked rootfs with nothing
from the host), and are tagged with the references the chart uses by default."""
import json
import os
import subprocess
import tarfile
import tempfile

import yaml

from test_chart import render

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "build", "images")


def blob(d, digest):
    return os.path.join(d, "blobs", *digest.split(":"))


def unpack(archive, dest):
    with tarfile.open(archive) as t:
        t.extractall(os.path.join(dest, "oci"))
    oci = os.path.join(dest, "oci")
    index = json.load(open(os.path.join(oci, "index.json")))
    m = index["manifests"][0]
    manifest = json.load(open(blob(oci, m["digest"])))
    config = json.load(open(blob(oci, manifest["config"]["digest"])))
    rootfs = os.path.join(dest, "rootfs")
    os.makedirs(rootfs)
    for layer in manifest["layers"]:
        with tarfile.open(blob(oci, layer["digest"])) as t:
            t.extractall(rootfs)
    return m["annotations"]["org.opencontainers.image.ref.name"], config, rootfs


def in_rootfs(rootfs, *argv):
    cmd = ["chroot", rootfs, *argv] if os.getuid() == 0 else ["unshare", "--user", "--map-root-user", "chroot",
                                                               rootfs, *argv]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30)


def test_images_build_run_and_match_the_chart():
    p = subprocess.run(["bash", os.path.join(ROOT, "scripts", "images.sh")], capture_output=True, text=True,
                       timeout=600)
    assert p.returncode == 0, p.stdout + p.stderr
    dep = [o for o in render() if o["kind"] == "Deployment"][0]
    c = dep["spec"]["template"]["spec"]["containers"][0]
    router_ref = [a for a in c["args"] if a.startswith("--router-image=")][0].split("=", 1)[1]
    expected = {"operator": c["image"], "router": router_ref}
    for name in ("router", "operator"):
        with tempfile.TemporaryDirectory() as d:
            ref, config, rootfs = unpack(os.path.join(OUT, f"switchboard-{name}.oci.tar"), d)
            assert ref == expected[name], (ref, expected[name])
            cfg = config["config"]
            assert cfg["User"] == "65532:65532"
            assert cfg["Entrypoint"] == [f"/usr/local/bin/switchboard-{name}"]
            assert not os.path.exists(os.path.join(rootfs, "bin", "sh")), "the image should hold no shell"
            r = in_rootfs(rootfs, f"/usr/local/bin/switchboard-{name}", "--version")
            assert r.returncode == 0 and r.stdout.startswith(f"switchboard-{name} "), r.stdout + r.stderr
            if name == "router":
                with open(os.path.join(rootfs, "tmp", "c.yaml"), "w") as f:
                    f.write("profile: production\nsecurity: {auth: none}\nagents: [{id: a}]\n")
                r = in_rootfs(rootfs, "/usr/local/bin/switchboard-router", "--check-config", "/tmp/c.yaml")
                assert "ok" in r.stdout, r.stdout + r.stderr  # parses, validates: libyaml, jansson, sodium load
                r = in_rootfs(rootfs, "/usr/local/bin/curl", "--version")  # the helm test hook's client
                assert r.returncode == 0, r.stderr
