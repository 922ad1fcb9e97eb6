"""Launch a Dagster job through the webserver's GraphQL API and wait for it to finish.

The kind workflow (.github/workflows/kind.yml) runs the `evolve` job this way, end to end: the webserver
installed by the Dagster chart queues the run, the daemon dequeues it, and the K8sRunLauncher starts it as a
Kubernetes Job under the crdb-pipeline ServiceAccount, exactly as a click on "Materialize all" would. Usage
(with `kubectl -n dagster port-forward svc/dagster-dagster-webserver 3001:80` running):

    python k8s/pipeline/run_job.py --url http://127.0.0.1:3001 --job evolve

Exit status 0 when the run succeeded, 1 when it failed or was canceled, 2 when it could not be launched or
did not finish in time; every status change is printed, and a failure says where the run's logs are.
"""

from __future__ import annotations

import argparse
import sys
import time
from urllib.parse import urlsplit

from dagster import DagsterRunStatus
from dagster_graphql import DagsterGraphQLClient, DagsterGraphQLClientError

# dagster-values.yaml: dagster-user-deployments.deployments[0].name is the code location's name; a
# Definitions object is served as the repository "__repository__".
LOCATION, REPOSITORY = "crdb-live-evolution", "__repository__"
FINISHED = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}


def client_for(url: str) -> DagsterGraphQLClient:
    parts = urlsplit(url)
    if not parts.hostname:
        raise SystemExit(f"--url {url!r} is not a URL like http://127.0.0.1:3001")
    return DagsterGraphQLClient(
        parts.hostname,
        port_number=parts.port,
        use_https=parts.scheme == "https",
        path_prefix=parts.path.rstrip("/"),
    )


def wait(client: DagsterGraphQLClient, run_id: str, timeout: float, poll: float) -> DagsterRunStatus:
    """Poll until the run finishes; print each status change. Transient API errors are retried."""
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        try:
            status = client.get_run_status(run_id)
        except DagsterGraphQLClientError as exc:  # a port-forward hiccup must not fail a long run
            print(f"run {run_id}: status unavailable ({exc}); retrying", flush=True)
            time.sleep(poll)
            continue
        if status != last:
            print(f"run {run_id}: {status.value}", flush=True)
            last = status
        if status in FINISHED:
            return status
        time.sleep(poll)
    raise TimeoutError(f"run {run_id} did not finish within {timeout:g}s (last status {last})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:3001", help="the Dagster webserver")
    parser.add_argument("--job", default="evolve")
    parser.add_argument("--location", default=LOCATION)
    parser.add_argument("--repository", default=REPOSITORY)
    parser.add_argument("--timeout", type=float, default=3600, help="seconds to wait for the run")
    parser.add_argument("--poll", type=float, default=10)
    args = parser.parse_args(argv)
    client = client_for(args.url)
    try:
        run_id = client.submit_job_execution(
            args.job, repository_location_name=args.location, repository_name=args.repository
        )
    except DagsterGraphQLClientError as exc:
        print(f"could not launch {args.job} in {args.location}: {exc}", file=sys.stderr)
        return 2
    print(f"launched {args.job}: run {run_id}", flush=True)
    try:
        status = wait(client, run_id, args.timeout, args.poll)
    except TimeoutError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    if status == DagsterRunStatus.SUCCESS:
        return 0
    print(
        f"run {run_id} ended {status.value}: see its events in the Dagster UI (/runs/{run_id}) and the run "
        f"pod's log (kubectl -n crdb logs job/dagster-run-{run_id})",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
