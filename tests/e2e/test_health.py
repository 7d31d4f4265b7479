"""The probes a process manager or load balancer asks, and the request id on every answer."""

from __future__ import annotations

import itertools
import json
import os
import re
from pathlib import Path

import httpx
import pytest

from tests.conftest import HubServer, Publisher, new_publisher, start_hub, stop_hub

_admins = itertools.count(1)


def test_probes_answer_when_the_hub_can_serve(hub: HubServer) -> None:
    assert httpx.get(f"{hub.url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{hub.url}/readyz")
    assert ready.status_code == 200
    body = ready.json()
    assert body["status"] == "ready"
    assert set(body["checks"]) == {"metastore", "bitstore"}
    assert all(check["ok"] and check["ms"] >= 0 for check in body["checks"].values())
    assert ready.headers["cache-control"] == "no-store"


def test_every_answer_carries_a_request_id(hub: HubServer) -> None:
    answers = [
        httpx.get(f"{hub.url}/api"),
        httpx.get(f"{hub.url}/api/package/nobody/nothing"),
        httpx.get(f"{hub.url}/search", headers={"Accept": "text/html"}),
        httpx.get(f"{hub.url}/no/such/route/here"),
    ]
    ids = [a.headers["x-request-id"] for a in answers]
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    assert len(set(ids)) == len(ids)
    # a proxy's id is kept; anything else is replaced
    kept = httpx.get(f"{hub.url}/api", headers={"X-Request-Id": "edge-1234.abc"})
    assert kept.headers["x-request-id"] == "edge-1234.abc"
    for bad in ("x" * 65, "a b", "<script>"):
        replaced = httpx.get(f"{hub.url}/api", headers={"X-Request-Id": bad})
        assert re.fullmatch(r"[0-9a-f]{32}", replaced.headers["x-request-id"])


def test_the_request_id_is_on_the_requests_log_lines(hub: HubServer) -> None:
    refused = httpx.get(f"{hub.url}/api/auth/keys", headers={"X-Request-Id": "trace-me-7c1f"})
    assert refused.status_code == 401
    assert re.search(r"\[trace-me-7c1f\]: refused GET /api/auth/keys", hub.log_text())


def test_metrics_for_site_admins(hub: HubServer, publisher: Publisher, tmp_path: Path) -> None:
    key = new_publisher(hub, tmp_path / "admin", "metrics-admin", site_admin=True).secret
    assert httpx.get(f"{hub.url}/metrics").status_code == 401
    with publisher.client() as client:
        assert client.get("/metrics").status_code == 403
    for _ in range(3):
        httpx.get(f"{hub.url}/healthz")
    httpx.get(f"{hub.url}/api/package/{publisher.username}/secret-name-{os.getpid()}")
    # each API process counts its own requests: ask until one has seen all of them
    text = ""
    for _ in range(20):
        answer = httpx.get(f"{hub.url}/metrics", headers={"Authorization": f"Bearer {key}"})
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/plain")
        text = answer.text
        if 'route="/api/package/{owner}/{name}",status="404"' in text:
            break
    assert 'dphub_http_requests_total{method="GET",route="/healthz",status="200"}' in text
    assert 'route="/api/package/{owner}/{name}",status="404"' in text
    assert "secret-name" not in text  # labels are route templates, never a caller's values
    assert "dphub_http_request_duration_seconds_bucket" in text
    assert "dphub_http_sent_bytes_total" in text
    queued = re.search(r'^dphub_jobs\{state="queued"\} (\d+)', text, flags=re.M)
    assert queued is not None
    assert re.search(r'^dphub_jobs_finished_total\{outcome="done"\} \d+', text, flags=re.M)
    assert re.search(r'^dphub_job_seconds_total\{outcome="failed"\} ', text, flags=re.M)


def test_json_log_lines_for_a_log_collector(tmp_path_factory: pytest.TempPathFactory) -> None:
    hub = start_hub(tmp_path_factory.mktemp("json-logs"), {"DPHUB_LOG_FORMAT": "json"})
    try:
        refused = httpx.get(
            f"{hub.url}/api/auth/keys?jwt=not-a-secret-to-keep",
            headers={"X-Request-Id": "json-trace-42"},
        )
        assert refused.status_code == 401
    finally:
        stop_hub(hub)
    lines = [json.loads(line) for line in hub.log_text().splitlines() if line.startswith("{")]
    assert lines, hub.log_text()
    assert all(set(line) >= {"time", "level", "logger", "request_id", "message"} for line in lines)
    traced = [line for line in lines if line["request_id"] == "json-trace-42"]
    [refusal] = [line for line in traced if line["logger"] == "dphub.api"]
    assert refusal["level"] == "WARNING"
    assert refusal["message"].startswith("refused GET /api/auth/keys from")
    assert "not-a-secret-to-keep" not in hub.log_text()
