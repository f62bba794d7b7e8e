"""The docs say what the code does: every metric with its labels, every
relative link resolving, the README a front page within the repository."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from prometheus_client.metrics import MetricWrapperBase

from gateway.metrics import GatewayMetrics
from scaler.metrics import ScalerMetrics
from worker.metrics import WorkerMetrics

REPO = Path(__file__).resolve().parents[3]
DOCS = sorted(
    [
        REPO / "README.md",
        REPO / "ARCHITECTURE.md",
        REPO / "charts" / "tidegate" / "README.md",
        *(REPO / "docs").glob("*.md"),
    ]
)


def exported() -> dict[str, tuple[str, ...]]:
    """Every tidegate metric the parts register, by the name a scrape shows
    (counters with ``_total``), with its label names."""
    found: dict[str, tuple[str, ...]] = {}
    for metrics in (GatewayMetrics(), WorkerMetrics(), ScalerMetrics()):
        for collector in metrics.registry._collector_to_names:
            if isinstance(collector, MetricWrapperBase) and collector._name.startswith("tidegate_"):
                suffix = "_total" if collector._type == "counter" else ""
                found[collector._name + suffix] = tuple(collector._labelnames)
    return found


def documented() -> dict[str, tuple[str, ...]]:
    rows: dict[str, tuple[str, ...]] = {}
    for line in (REPO / "docs" / "metrics.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) < 3 or not cells[0].startswith("`tidegate_"):
            continue
        labels = tuple(x.strip() for x in cells[1].split(",") if x.strip())
        for name in re.findall(r"`(tidegate_[a-z_]+)`", cells[0]):
            rows[name] = labels
    return rows


def test_every_metric_is_documented_with_its_labels() -> None:
    ours, doc = exported(), documented()
    assert len(ours) > 30
    missing = sorted(set(ours) - set(doc))
    assert not missing, f"metrics not in docs/metrics.md: {missing}"
    gone = sorted(set(doc) - set(ours))
    assert not gone, f"docs/metrics.md names metrics no part exports: {gone}"
    wrong = {n: (doc[n], ours[n]) for n in ours if set(doc[n]) != set(ours[n])}
    assert not wrong, f"labels differ (documented, exported): {wrong}"


def _links(path: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.DOTALL)
    return re.findall(r"\]\(([^)\s]+)\)", text)


def _anchors(path: Path) -> set[str]:
    heads = re.findall(r"^#+ (.+)$", path.read_text(), flags=re.MULTILINE)
    return {re.sub(r"[^a-z0-9 _-]", "", h.lower()).replace(" ", "-") for h in heads}


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves(path: Path) -> None:
    for link in _links(path):
        if re.match(r"^[a-z]+:", link):
            continue
        target, _, anchor = link.partition("#")
        resolved = (path.parent / target).resolve() if target else path
        assert resolved.exists(), f"{path.name}: {link} does not exist"
        if anchor and resolved.suffix == ".md":
            assert anchor in _anchors(resolved), f"{path.name}: no heading for {link}"


def test_the_readme_is_a_front_page_within_the_repository() -> None:
    readme = REPO / "README.md"
    assert len(readme.read_text().splitlines()) <= 300
    outside = [link for link in _links(readme) if link.startswith(("http", "../"))]
    assert not outside, outside
