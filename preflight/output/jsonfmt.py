"""JSON report: the machine-readable contract (schema in preflight/schema/report.schema.json)."""

from __future__ import annotations

import json
from typing import TextIO

from preflight.model import Report
from preflight.output import RenderOptions


def render(report: Report, out: TextIO, options: RenderOptions) -> None:
    """Write the report as one JSON document."""
    # dumps, then one write: json.dump writes each of ~25,000 pieces by a Python call (+5 ms).
    out.write(json.dumps(report.to_dict(), indent=2))
    out.write("\n")


def render_line(report: Report, out: TextIO, options: RenderOptions) -> None:
    """Write the report as one line of compact JSON (JSON lines: append many nodes' reports to
    one file, or stream them into `preflight compare -`)."""
    out.write(json.dumps(report.to_dict(), separators=(",", ":")))  # C encoder: dump has none
    out.write("\n")
