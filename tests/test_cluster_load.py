"""Reading many reports: files, folders, globs, tarballs, JSON lines, stdin; bad input; parallel."""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path
from typing import Any

import pytest

from preflight.cluster import aggregate, fastparse
from preflight.cluster.aggregate import collect
from preflight.cluster.record import from_document, parse
from preflight.cluster.sources import Item, expand
from preflight.errors import UsageError
from tests.cluster_reports import report, write_fleet


@pytest.fixture(scope="module")
def fleet_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("fleet") / "reports"
    write_fleet(folder)
    return folder


def normal(facts: Any) -> Any:
    """Facts with node ids sorted (workers finish in any order)."""
    return {
        g: {k: {v: sorted(ids) for v, ids in vals.items()} for k, vals in keys.items()}
        for g, keys in facts.items()
    }


def names(items: list[Item]) -> list[str]:
    return [Path(i.source.split(":")[-1]).name for i in items]


def test_folder_is_searched_recursively_for_report_files(fleet_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "x.json").write_text("{}")
    (tmp_path / "a" / "notes.txt").write_text("not a report")
    assert names(list(expand([str(tmp_path)]))) == ["x.json"]
    assert len(list(expand([str(fleet_dir)]))) == 9


def test_quoted_glob_is_expanded_here(fleet_dir: Path) -> None:
    items = list(expand([str(fleet_dir / "node0[1-3].json")]))
    assert names(items) == ["node01.json", "node02.json", "node03.json"]


def test_missing_path_and_empty_glob_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such file"):
        list(expand([str(tmp_path / "nope.json")]))
    with pytest.raises(UsageError, match="no file matches"):
        list(expand([str(tmp_path / "*.json")]))


def test_tarball_and_json_lines(fleet_dir: Path, tmp_path: Path) -> None:
    tgz = tmp_path / "sweep.tar.gz"
    with tarfile.open(tgz, "w:gz") as tar:
        tar.add(fleet_dir, arcname="sweep")
    lines = tmp_path / "sweep.jsonl"
    docs = [json.loads(p.read_text()) for p in sorted(fleet_dir.glob("*.json"))]
    lines.write_text("".join(json.dumps(d) + "\n" for d in docs[:3]) + "\n")
    from_tar = collect(expand([str(tgz)]), jobs=1)
    from_lines = collect(expand([str(lines)]), jobs=1)
    assert len(from_tar.nodes) == 9 and not from_tar.unreadable
    assert sorted(r.name for r in from_lines.nodes.values()) == ["node01", "node02", "node03"]
    assert next(iter(from_lines.nodes.values())).source == f"{lines}:1"


def test_stdin_json_lines(fleet_dir: Path) -> None:
    doc = json.loads((fleet_dir / "node07.json").read_text())
    stdin = io.BytesIO((json.dumps(doc) + "\n").encode())
    fleet = collect(expand(["-"], stdin), jobs=1)
    assert [r.name for r in fleet.nodes.values()] == ["node07"]
    assert fleet.nodes[0].failing[0][0] == "pcie.acs"


def test_broken_inputs_are_listed_not_fatal(fleet_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "truncated.json").write_text((fleet_dir / "node01.json").read_text()[:500])
    (tmp_path / "other.json").write_text('{"schema_version": 1}')
    newer = json.loads((fleet_dir / "node01.json").read_text())
    newer["schema_version"] = 2
    (tmp_path / "future.json").write_text(json.dumps(newer))
    (tmp_path / "broken.tar.gz").write_bytes(b"\x1f\x8b not really gzip")
    (tmp_path / "deep.json").write_text("[" * 100_000)
    fleet = collect(expand([str(tmp_path), str(fleet_dir / "node02.json")]), jobs=1)
    errors = {Path(s).name: e for s, e in fleet.unreadable}
    assert set(errors) == {
        "truncated.json",
        "other.json",
        "future.json",
        "broken.tar.gz",
        "deep.json",
    }
    assert "not a JSON report" in errors["truncated.json"]
    assert "not a preflight run report" in errors["other.json"]
    assert "schema_version 2" in errors["future.json"]
    assert [r.name for r in fleet.nodes.values()] == ["node02"]


def test_unhashable_fact_makes_a_report_unreadable(fleet_dir: Path) -> None:
    good = json.loads((fleet_dir / "node01.json").read_text())
    bad: dict[str, Any] = json.loads(json.dumps(good))
    bad["host"]["hostname"] = "bad"
    bad["facts"]["zz.list"] = [1, 2]
    items = [Item("bad", json.dumps(bad).encode()), Item("good", json.dumps(good).encode())]
    fleet = collect(items, jobs=1)
    assert fleet.unreadable == [("bad", "fact 'zz.list' is a list, not a single value")]
    # nothing of the bad report stayed in the facts
    assert all(
        list(ids) == [1] for values in fleet.facts["dgx-h100"].values() for ids in values.values()
    )


def test_newest_report_of_a_node_wins(fleet_dir: Path) -> None:
    old = json.loads((fleet_dir / "node07.json").read_text())
    new = json.loads((fleet_dir / "node01.json").read_text())
    old["started_at"], new["started_at"] = "2025-01-01T00:00:00+00:00", "2025-02-01T00:00:00+00:00"
    new["host"]["hostname"] = "node07"
    items = [Item("new", json.dumps(new).encode()), Item("old", json.dumps(old).encode())]
    fleet = collect(items, jobs=1)
    assert fleet.duplicates == [("node07", "new", "old")]
    assert [r.source for r in fleet.nodes.values()] == ["new"]
    assert all(list(ids) == [0] for v in fleet.facts["dgx-h100"].values() for ids in v.values())


def test_workers_give_the_same_fleet_as_one_process(
    fleet_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(aggregate, "BATCH", 2)  # 9 reports → 5 batches over 2 workers
    serial = collect(expand([str(fleet_dir)]), jobs=1)
    parallel = collect(expand([str(fleet_dir)]), jobs=2)
    assert parallel.nodes == serial.nodes
    assert normal(parallel.facts) == normal(serial.facts)
    assert (
        parallel.groups
        == serial.groups
        == {
            "dgx-h100": [0, 1, 2, 3, 4, 5, 6],
            "hgx-h200": [7, 8],
        }
    )


def test_group_by_a_fact_or_none(fleet_dir: Path) -> None:
    by_product = collect(expand([str(fleet_dir)]), group_by="dmi.product_name", jobs=1)
    assert sorted(by_product.groups) == [
        "dmi.product_name=DGXH100",
        "dmi.product_name=SYS-821GE-TNHR",
    ]
    assert list(collect(expand([str(fleet_dir)]), group_by="none", jobs=1).groups) == ["all"]


def test_report_helper_runs_the_profile_under_the_hostname(tmp_path: Path) -> None:
    doc = report("dgx-h100", "gpu-x", tmp_path)
    assert doc["host"]["hostname"] == "gpu-x" and doc["summary"]["status"] == "pass"


# -- the shortcut that skips findings -----------------------------------------------------


SAMPLE = ("dgx-h100", "hgx-h200", "dgx-h100-acs-enabled", "dgx-h100-unprivileged")


@pytest.fixture(scope="module")
def every_profile(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    work = tmp_path_factory.mktemp("profiles")
    docs = [report(name, f"h-{name}", work) for name in SAMPLE]
    # an errored check, with a summary that needs escaping, as the runner writes one
    errored = json.loads(json.dumps(docs[0]))
    errored["results"][0].update(status="error", summary='TimeoutError: "read" \\ … abandoned')
    errored["summary"]["counts"]["error"] += 1
    errored["summary"]["counts"]["pass"] -= 1
    return [*docs, errored]


def test_shortcut_agrees_with_the_full_decode(every_profile: list[dict[str, Any]]) -> None:
    assert any(d["summary"]["counts"]["fail"] for d in every_profile)
    passing = 0
    for doc in every_profile:
        counts = doc["summary"]["counts"]
        for text in (json.dumps(doc, indent=2), json.dumps(doc, separators=(",", ":"))):
            quick = fastparse.split(text.encode())
            # Only a report whose results hold no fail or error skips their decode.
            assert (quick is not None) == (counts["fail"] + counts["error"] == 0), doc["host"]
            passing += quick is not None
            assert parse(text, "x") == from_document(json.loads(text), "x")
    assert passing


def test_shortcut_steps_aside_for_other_layouts(every_profile: list[dict[str, Any]]) -> None:
    failing = next(d for d in every_profile if d["summary"]["counts"]["fail"])
    ok = next(
        d
        for d in every_profile
        if not d["summary"]["counts"]["fail"] + d["summary"]["counts"]["error"]
    )
    reordered = json.dumps(ok, sort_keys=True)  # "facts" before "results"
    assert fastparse.split(reordered.encode()) is None
    assert parse(reordered, "x") == from_document(ok, "x")
    miscounted = json.loads(json.dumps(ok))
    miscounted["summary"]["counts"]["fail"] += 1
    assert fastparse.split(json.dumps(miscounted).encode()) is None
    no_summary = {k: v for k, v in failing.items() if k != "summary"}
    assert fastparse.split(json.dumps(no_summary).encode()) is None
    assert parse(json.dumps(no_summary), "x")[0].failing == from_document(failing, "x")[0].failing
    trailing = json.dumps(ok)[:-1] + ', "extra": 1}'
    quick = fastparse.split(trailing.encode())
    assert quick is None or fastparse.facts(quick[1]) is None
    assert parse(trailing, "x") == from_document(json.loads(trailing), "x")


@pytest.mark.skipif(not aggregate.SAFE_SPAWN, reason="Python 3.10 decodes in this process")
def test_workers_never_import_from_the_working_directory(
    fleet_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A spawned worker starts as `python -c`: without PYTHONSAFEPATH a `multiprocessing/` folder
    # in the working directory would be imported, as root, before the worker's own code runs.
    marker = tmp_path / "marker"
    hostile = tmp_path / "cwd" / "multiprocessing"
    hostile.mkdir(parents=True)
    (hostile / "__init__.py").write_text(f"open({str(marker)!r}, 'w').write('imported')\n")
    monkeypatch.delenv("PYTHONSAFEPATH", raising=False)
    monkeypatch.chdir(hostile.parent)
    monkeypatch.setattr(aggregate, "BATCH", 2)
    fleet = collect(expand([str(fleet_dir)]), jobs=2)
    assert len(fleet.nodes) == 9
    assert not marker.exists(), "a worker imported multiprocessing from the working directory"
    assert "PYTHONSAFEPATH" not in os.environ  # only the workers get it, not later children
