"""Third-party checks: the entry-point plugin path, and the example site checks of checks/.

The example distribution (checks/preflight-site-example) is put on the path of a fresh
interpreter with a dist-info folder that declares its `preflight.checks` entry point, exactly
what `pip install` leaves behind, so the test needs no network and no install step; CI also
pip-installs it (.ci/run), and then the in-process tests see it too.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

from preflight.host import FsUsage, Limit
from preflight.inventory import Inventory
from preflight.inventory.kernel_modules import parse_proc_modules
from preflight.inventory.mounts import parse_mounts
from preflight.model import Status
from preflight.registry import CheckSpec, specs_in_module
from preflight.sources.limits import ResourceSource
from tests.paths import DATA
from tests.test_catalog import FORBIDDEN_CALLS, FORBIDDEN_MODULES, SECTIONS

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "checks" / "preflight-site-example"
PROFILE = str(DATA / "profiles" / "site-example.json")
ENTRY_POINT = "site_example = preflight_site_example.site"

sys.path.insert(0, str(EXAMPLE))  # for the in-process unit tests below
import preflight_site_example.site as site  # noqa: E402

SPECS: list[CheckSpec[Any]] = specs_in_module(site)


def dist_info(where: Path, name: str, entry_points: str) -> Path:
    """What pip writes for an installed distribution, as far as importlib.metadata reads it."""
    folder = where / f"{name.replace('-', '_')}-0.1.0.dist-info"
    folder.mkdir(parents=True)
    (folder / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1.0\n")
    (folder / "entry_points.txt").write_text(f"[preflight.checks]\n{entry_points}\n")
    return where


def preflight(path: list[Path], *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m preflight ARGS` in a fresh interpreter with `path` first on sys.path."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(p) for p in [*path, ROOT])}
    return subprocess.run(
        [sys.executable, "-m", "preflight", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


# -- the entry-point path, end to end --------------------------------------------------------


def test_an_installed_plugin_is_listed_explained_and_run(tmp_path: Path) -> None:
    path = [dist_info(tmp_path, "preflight-site-example", ENTRY_POINT), EXAMPLE]
    listed = preflight(path, "list", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    rows = {r["id"]: r for r in json.loads(listed.stdout)}
    assert rows["site.mounts"]["params"] == {"required": [], "timeout_s": 2.0}
    assert rows["site.kernel_modules"]["tags"] == ["site"]
    explained = preflight(path, "explain", "site.mounts")
    assert explained.returncode == 0, explained.stderr
    assert "statvfs(2)" in explained.stdout and "Why" in explained.stdout
    ran = preflight(
        path,
        "run",
        "--profile",
        PROFILE,
        "--only",
        "site.*",
        "--set",
        "site.mounts.required=/home:nfs4,/scratch",
        "--set",
        "site.kernel_modules.required=nvidia=565.57.01",
        "--format",
        "json",
    )
    assert ran.returncode == 1, ran.stderr
    status = {r["id"]: (r["status"], r["summary"]) for r in json.loads(ran.stdout)["results"]}
    assert status == {
        "site.mounts": ("fail", "/scratch: not mounted"),
        "site.kernel_modules": ("pass", "1 required modules loaded"),
    }


def test_a_plugin_that_fails_to_load_is_one_line_of_error(tmp_path: Path) -> None:
    path = [dist_info(tmp_path, "preflight-broken", "broken = no_such_module_xyz")]
    ran = preflight(path, "list")
    assert ran.returncode == 3, ran.stderr
    lines = ran.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in ran.stderr
    assert lines[0].startswith("preflight: error: check plugin 'broken' failed to load")


# -- the example checks on a profile ---------------------------------------------------------


def run_site(*settings: str) -> dict[str, tuple[str, list[tuple[str, str, str]]]]:
    from tests.harness import run_json

    argv = ["--profile", PROFILE, "--only", "site.*"]
    for setting in settings:
        argv += ["--set", setting]
    _, doc = run_json(*argv)
    return {
        r["id"]: (r["status"], [(f["subject"], f["status"], f["message"]) for f in r["findings"]])
        for r in doc["results"]
        if r["id"].startswith("site.")
    }


@pytest.fixture(autouse=True)
def _example_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process runs discover the example as if installed (whether or not it is)."""
    import preflight.registry as registry

    real = registry.discover

    def discover(include_plugins: bool = True) -> registry.Registry:
        found = real(include_plugins)
        if not include_plugins or "site.mounts" in found.specs:
            return found
        return registry.Registry([*found, *SPECS])

    monkeypatch.setattr(registry, "discover", discover)
    # preflight.execute binds the name at import: an earlier test may have imported it already.
    import preflight.execute as app

    monkeypatch.setattr(app, "discover", discover)


def test_mounts_pass_fail_and_escaped_names() -> None:
    got = run_site("site.mounts.required=/home:nfs4,/data,/scratch,/raid:xfs,/mnt/team datasets")
    status, findings = got["site.mounts"]
    assert status == "fail"
    assert findings == [
        ("/home", "pass", "nfs4 from nfs01:/export/home"),
        ("/data", "fail", "statvfs failed (stale file handle or I/O error)"),
        ("/scratch", "fail", "not mounted"),
        ("/raid", "fail", "ext4, expected xfs"),
        ("/mnt/team datasets", "pass", "nfs4 from nfs01:/export/team datasets"),
    ]


def test_modules_pinned_loaded_and_loading() -> None:
    got = run_site(
        "site.kernel_modules.required=nvidia=565.57.01,nvidia_peermem=550.54.14,lustre,nvme"
    )
    status, findings = got["site.kernel_modules"]
    assert status == "fail"
    assert findings == [
        ("nvidia", "pass", "loaded 565.57.01"),
        ("nvidia_peermem", "fail", "version 565.57.01, pinned 550.54.14"),
        ("lustre", "warn", "state Loading"),
        ("nvme", "fail", "not loaded"),
    ]


def test_unconfigured_site_checks_skip_and_say_how_to_configure() -> None:
    got = run_site()
    assert got["site.mounts"] == ("skip", [])
    assert got["site.kernel_modules"] == ("skip", [])


def test_all_required_present_passes() -> None:
    got = run_site(
        "site.mounts.required=/home:nfs4,/mnt/team datasets",
        "site.kernel_modules.required=nvidia=565.57.01,mlx5_core,ib_uverbs",
    )
    assert {k: v[0] for k, v in got.items()} == {
        "site.mounts": "pass",
        "site.kernel_modules": "pass",
    }


# -- a mount that does not answer ------------------------------------------------------------


class HungNfs:
    """Stand-in for a node whose NFS server is gone: statvfs on /home blocks in the kernel (it
    cannot be produced here without a dead server); other paths answer as the profile says."""

    def __init__(self, inner: ResourceSource) -> None:
        self.inner = inner
        self.release = threading.Event()

    def limits(self) -> dict[str, Limit]:
        return self.inner.limits()

    def statvfs(self, path: str) -> FsUsage | None:
        if path == "/home":
            self.release.wait()
        return self.inner.statvfs(path)


@pytest.fixture
def hung_inventory() -> Iterator[Inventory]:
    from preflight.profile import host_from_profile

    host = host_from_profile(PROFILE)
    hung = HungNfs(host.resources)
    host.resources = hung
    yield Inventory(host)
    hung.release.set()


def test_a_mount_that_does_not_answer_fails_at_its_deadline(hung_inventory: Inventory) -> None:
    spec = next(s for s in SPECS if s.id == "site.mounts")
    params = site.MountsParams(required=("/home", "/mnt/team datasets"), timeout_s=0.3)
    start = time.monotonic()
    verdict = spec.func(hung_inventory, params)
    elapsed = time.monotonic() - start
    assert 0.3 <= elapsed < 2.0
    assert verdict.status is Status.FAIL
    assert [(f.subject, f.status) for f in verdict.findings] == [
        ("/home", Status.FAIL),
        ("/mnt/team datasets", Status.PASS),
    ]
    assert verdict.summary == "/home: statvfs did not answer within 0.3 s (server unreachable?)"


# -- parsers on hostile text ----------------------------------------------------------------


def test_mount_table_unescapes_and_ignores_junk() -> None:
    text = (
        "garbage\n\n/dev/sda1 / ext4 rw 0 0\nsrv:/a\\040b /mnt/a\\040b nfs4 rw,hard 0 0\n"
        "x relative ext4 rw 0 0\n/dev/sdb1 / xfs rw 0 0\n"
    )
    mounts = parse_mounts(text)
    assert sorted(mounts) == ["/", "/mnt/a b"]
    assert mounts["/"].fstype == "xfs"  # the last mount on a point is the one visible
    assert mounts["/mnt/a b"].source == "srv:/a b" and mounts["/mnt/a b"].options == ("rw", "hard")


def test_module_list_never_yields_a_path() -> None:
    text = (
        "nvidia 1 0 - Live 0x0\n../../etc 1 0 - Live 0x0\nshort line\n"
        "mlx5_core 2 1 mlx5_ib, Live 0\n"
    )
    assert parse_proc_modules(text) == {"nvidia": "Live", "mlx5_core": "Live"}


# -- the example follows the rules of built-in checks ----------------------------------------


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.id)
def test_example_checks_are_documented_like_builtins(spec: CheckSpec[Any]) -> None:
    assert spec.doc.splitlines()[0].endswith(".")
    for section in SECTIONS:
        assert section in spec.doc, f"{spec.id} lacks {section}"
    params: Any = spec.params
    assert params.__dataclass_params__.frozen
    assert spec.func.__name__ == spec.id.split(".", 1)[1]


def test_example_reads_the_node_only_through_the_inventory() -> None:
    source = Path(site.__file__).read_text()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            assert all(a.name.split(".")[0] not in FORBIDDEN_MODULES for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert (node.module or "").split(".")[0] not in FORBIDDEN_MODULES, node.module
            assert not (node.module or "").startswith(("preflight.host", "preflight.nvml"))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            assert node.func.id not in FORBIDDEN_CALLS
        elif isinstance(node, ast.Attribute):
            assert node.attr not in ("host", "environ"), "a check gets the inventory, not the host"
    assert not re.search(r"\bopen\(", source)


def test_the_example_declares_the_entry_point_the_tests_use() -> None:
    text = (EXAMPLE / "pyproject.toml").read_text()
    points = tomllib.loads(text)["project"]["entry-points"]["preflight.checks"]
    name, _, value = ENTRY_POINT.partition(" = ")
    assert points == {name: value}
