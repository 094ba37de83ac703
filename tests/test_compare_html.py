"""`preflight compare --format html`: the page's model, its escaping, and the page itself in a real
headless Chromium (rendering without errors, one row per node, filtering, hostile names as text,
a finding and its evidence on a click, a screenshot kept as an artifact)."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from preflight.cluster import aggregate, html, sources
from preflight.cluster import compare as comparison
from tests.chromium import Browser, artifacts, binary
from tests.cluster_reports import _cached
from tests.harness import cli

HOSTILE = [
    "</script><script>alert(1)</script>",
    "<img src=x onerror=alert(2)>",
    "line\u2028sep\u2029para",
    "amp&lt;&#x3c;",
]


def _fleet(folder: Path, healthy: int) -> list[str]:
    """healthy DGX H100 nodes, one with ACS redirect on, two HGX H200, and the hostile names
    (healthy H100s); returns every hostname."""
    plan = [(f"gpu-{i:04d}", "dgx-h100") for i in range(healthy)]
    plan += [("gpu-acs", "dgx-h100-acs-enabled"), ("h200-a", "hgx-h200"), ("h200-b", "hgx-h200")]
    plan += [(name, "dgx-h100") for name in HOSTILE]
    folder.mkdir(parents=True, exist_ok=True)
    for k, (name, profile) in enumerate(plan):
        doc = copy.deepcopy(_cached(profile, "template-" + profile))
        doc["host"]["hostname"] = name
        (folder / f"r{k:05d}.json").write_text(json.dumps(doc, indent=2) + "\n")
    return [name for name, _ in plan]


def _model(folder: Path) -> dict[str, Any]:
    fleet = aggregate.collect(sources.expand([str(folder)], None), jobs=1, detail=True)
    return html.model(comparison.compare(fleet, "baseline"))


def test_embed_is_inert_in_a_script_element() -> None:
    doc = {"name": "</script><!--\u2028\u2029<b>&amp;", "n": 1}
    text = html.embed(doc)
    assert re.search(r"[<>&\u2028\u2029]", text) is None
    assert not any(ord(c) > 127 for c in text)
    assert json.loads(text) == doc


def test_model_has_every_node_a_status_per_check_and_the_findings(tmp_path: Path) -> None:
    names = _fleet(tmp_path / "r", 3)
    m = _model(tmp_path / "r")
    assert sorted(n[0] for n in m["nodes"]) == sorted(names)
    assert m["groups"] == ["dgx-h100", "hgx-h200"]
    assert {len(n[2]) for n in m["nodes"]} == {len(m["checks"])}
    # nodes are ordered by group, then name
    assert [(n[1], n[0]) for n in m["nodes"]] == sorted((n[1], n[0]) for n in m["nodes"])
    acs = m["checks"].index("pcie.acs")
    node = next(k for k, n in enumerate(m["nodes"]) if n[0] == "gpu-acs")
    assert m["nodes"][node][2][acs] == "f"
    assert all(n[2][acs] == "p" for n in m["nodes"] if n[0] != "gpu-acs")
    detail = next(d for d in m["details"][node] if d[0] == acs)
    assert detail[1] == "fail" and "ACS" in detail[2]
    assert detail[4][0]["status"] == "fail"
    assert "ACSCtl" in detail[4][0]["evidence"][0]["source"]
    assert m["failures"] == [
        {"check": "pcie.acs", "summary": detail[2], "nodes": [node]},
    ]
    assert m["by_action"] == [{"action": "fix-config", "nodes": [node]}]  # ACS: a BIOS setting


def test_failing_nodes_are_grouped_by_their_strongest_action(tmp_path: Path) -> None:
    folder = tmp_path / "r"
    _fleet(folder, 1)
    acs = next(p for p in folder.iterdir() if '"hostname": "gpu-acs"' in p.read_text())
    doc = json.loads(acs.read_text())
    for r in doc["results"]:
        if r["id"] == "pcie.acs":
            r["action"] = "fix-config"
            r["findings"][0]["action"] = "reboot"
    acs.write_text(json.dumps(doc, indent=2) + "\n")
    m = _model(folder)
    node = next(k for k, n in enumerate(m["nodes"]) if n[0] == "gpu-acs")
    assert m["by_action"] == [{"action": "reboot", "nodes": [node]}]


def test_cli_writes_one_page_without_network_references(tmp_path: Path) -> None:
    _fleet(tmp_path / "r", 2)
    out = tmp_path / "fleet.html"
    result = cli("compare", str(tmp_path / "r"), "--format", "html", "--output", str(out))
    assert result.exit_code == 1, result.output  # gpu-acs fails
    page = out.read_text()
    assert page.count("</script>") == 2  # the data element's and the code's: nothing closes early
    assert re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page) is None
    assert "default-src 'none'" in page


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    exe = binary()
    if exe is None:
        pytest.skip("no Chromium on this machine (Debian: apt-get install chromium)")
    b = Browser(exe)
    try:
        yield b
    finally:
        b.close()


def test_page_in_chromium(tmp_path: Path, browser: Browser) -> None:
    names = _fleet(tmp_path / "r", 300)
    out = tmp_path / "fleet.html"
    cli("compare", str(tmp_path / "r"), "--format", "html", "--output", str(out))
    browser.events.clear()
    browser.open(out.as_uri())
    assert browser.errors() == []
    # one model row per node; only the rows in view are in the DOM
    assert browser.evaluate("document.getElementById('heat').dataset.rows") == str(len(names))
    in_dom = browser.evaluate("document.querySelectorAll('#heat .row.node').length")
    assert 10 < in_dom < 120
    cells = browser.evaluate(
        "document.querySelector('#heat .row.node').querySelectorAll('.cell').length"
    )
    assert cells == len(
        json.loads(
            browser.evaluate(
                "JSON.stringify(JSON.parse(document.getElementById('fleet-data').textContent).checks)"
            )
        )
    )
    browser.screenshot(artifacts() / "fleet-report.png")
    # scrolling to the end shows the last node (by group, then name)
    last = sorted(names, key=lambda n: (n.startswith("h200"), n))[-1]
    browser.evaluate(
        "(h => { h.scrollTop = h.scrollHeight; h.dispatchEvent(new Event('scroll')); })"
        "(document.getElementById('heat'))"
    )
    browser.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    shown = browser.evaluate(
        "[...document.querySelectorAll('#heat .row.node .name')].map(e => e.textContent)"
    )
    assert shown[-1] == last
    # hostile names are text: present verbatim, no element or dialog injected
    browser.evaluate("document.getElementById('filter').focus()")
    for name in HOSTILE:
        browser.evaluate("document.getElementById('filter').value = ''")
        browser.call("Input.insertText", text=name)
        browser.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
        shown = browser.evaluate(
            "[...document.querySelectorAll('#heat .row.node .name')].map(e => e.textContent)"
        )
        assert shown == [name]
    assert browser.evaluate("document.querySelectorAll('img, #heat script').length") == 0
    # filtering by typing: a prefix keeps its nodes only
    browser.evaluate("document.getElementById('filter').value = ''")
    browser.call("Input.insertText", text="gpu-01")
    browser.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    expected = sum(1 for n in names if "gpu-01" in n)
    assert browser.evaluate("document.getElementById('heat').dataset.rows") == str(expected)
    assert browser.evaluate("document.getElementById('count').textContent").startswith(
        f"{expected} of"
    )
    # a URL hash filters too: failing nodes only; a click on the failing cell shows the evidence
    browser.call("Page.navigate", url="about:blank")
    browser.open(out.as_uri() + "#show=fail")
    assert browser.evaluate("document.getElementById('heat').dataset.rows") == "1"
    browser.evaluate("document.querySelector('#heat .cell.s-f').click()")
    detail = browser.evaluate("document.getElementById('detail').textContent")
    assert "gpu-acs" in detail and "pcie.acs: fail" in detail and "ACSCtl" in detail
    assert browser.errors() == []
    browser.screenshot(artifacts() / "fleet-report-failing.png")
    # a malformed hash is taken as typed, not an exception
    browser.call("Page.navigate", url="about:blank")
    browser.open(out.as_uri() + "#filter=%E0%A4%A&show=all")
    assert browser.evaluate("document.getElementById('filter').value") == "%E0%A4%A"
    assert browser.errors() == []
