"""Grafana: links to a phase's time window, and phase-run annotations on the evolution dashboard.

Both are conveniences for the people watching: an unset URL turns them off, and a Grafana that does not
answer only logs a warning. A phase never fails because of Grafana.
"""

from __future__ import annotations

from urllib.parse import urlencode

import dagster as dg
import httpx

from crdb_common import httpc

TOKEN_VARIABLE = "GRAFANA_API_TOKEN"  # shared by both environments
ANNOTATION_TAGS = ("crdb-evolution", "phase")  # what the evolution dashboard's annotation query selects


class GrafanaResource(dg.ConfigurableResource):
    # `url` is what the people watching open (links in the checks: often a port-forward such as
    # http://127.0.0.1:3000); `api_url` is where the run itself posts annotations (inside Kubernetes the
    # Service, http://grafana.monitoring.svc:3000). Unset, api_url is url.
    url: str = ""
    api_url: str = ""
    dashboard_uid: str = "crdb-evolution"
    cluster_label: str = "crdb-live"
    # A service-account token (Editor). Given as dg.EnvVar(TOKEN_VARIABLE) (configuration.py): Dagster
    # resolves it when each run starts and the UI shows only the variable's name. Empty: no annotations.
    api_token: str = ""
    timeout_seconds: float = 5.0

    def link(self, start: float, end: float, dashboard_uid: str | None = None) -> str | None:
        if not self.url:
            return None
        params = urlencode({"from": int(start * 1000), "to": int(end * 1000) + 60_000,
                            "var-cluster": self.cluster_label})
        return f"{self.url.rstrip('/')}/d/{dashboard_uid or self.dashboard_uid}?{params}"

    def annotate(self, start: float, end: float, text: str, tags: list[str],
                 base_tags: tuple[str, ...] = ANNOTATION_TAGS) -> str:
        """Post a region annotation once; returns what happened, for the run log. base_tags say which
        dashboard's annotation query shows it (the evolution dashboard's by default). A re-run (a check
        re-executed, a retried step) finds the annotation it posted before and leaves it alone."""
        token = self.api_token
        api = (self.api_url or self.url).rstrip("/")
        if not api or not token:
            return f"not annotated (set GRAFANA_URL and {TOKEN_VARIABLE} to annotate Grafana)"
        body = {"time": int(start * 1000), "timeEnd": int(end * 1000), "text": text,
                "tags": [*base_tags, *tags]}
        headers = {"Authorization": f"Bearer {token}"}
        try:
            if (found := self._existing(api, headers, body)) is not None:
                return f"already annotated in Grafana (id {found})"
            r = httpc.post(f"{api}/api/annotations", json=body, timeout=self.timeout_seconds, headers=headers)
        except httpx.HTTPError as exc:
            return f"Grafana at {api} unreachable, not annotated: {exc}"
        if r.status_code != 200:
            return f"Grafana refused the annotation ({r.status_code}): {r.text[:200]}"
        return f"annotated Grafana (id {r.json().get('id')})"

    def _existing(self, api: str, headers: dict, body: dict) -> int | None:
        """The id of an annotation with the same tags and the same time range, if Grafana has one.

        GET /api/annotations (grafana.com/docs/grafana/latest/developers/http_api/annotations/, "Find
        Annotations"): `tags` repeated is an AND and from/to select the annotations overlapping the range
        (grafana/grafana pkg/services/annotations/annotationsimpl/xorm_store.go); the exact range and tag set
        are compared here. A lookup Grafana refuses is no reason not to post: the caller posts then."""
        params = [("from", body["time"]), ("to", body["timeEnd"]), ("type", "annotation"), ("limit", 100)]
        params += [("tags", t) for t in body["tags"]]
        r = httpc.get(f"{api}/api/annotations", params=params, headers=headers, timeout=self.timeout_seconds)
        if r.status_code != 200 or not isinstance(found := r.json(), list):
            return None
        for item in found:
            same_range = (item.get("time"), item.get("timeEnd")) == (body["time"], body["timeEnd"])
            if same_range and sorted(item.get("tags") or []) == sorted(body["tags"]):
                return item.get("id")
        return None
