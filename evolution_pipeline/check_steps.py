"""One Dagster step per asset for its checks: a @multi_asset_check whose checks run concurrently.

A phase has six blocking checks that mostly wait for the same instants (the phase window's end, Prometheus's
settle polls), so one after another they cost the sum of their waits and a step's overhead each; in one
step, each in its own thread, they cost about the longest wait. Every check still reports on its own: Dagster
fails the step only after it has yielded all its results when any blocking ERROR check failed
(dagster-io/dagster python_modules/dagster/dagster/_core/execution/plan/execute_step.py, the
failed_blocking_asset_check_evaluations loop), and blocking is per check spec, so a failed check holds back
the assets downstream of the one it judges (_core/definitions/assets/job/asset_job.py,
_get_blocking_asset_check_output_handles_by_asset_key). can_subset=True: the UI (or a run's
asset_check_selection) can run any one check alone, and only the selected checks are evaluated.
"""

from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass

import dagster as dg

# judge(context, upstream value, *resources) -> the check's result, before it is named for its spec.
Judge = Callable[..., dg.AssetCheckResult]


@dataclass(frozen=True)
class Check:
    name: str
    description: str
    judge: Judge


def checks_step(asset: dg.AssetKey, checks: list[Check], *, resource_keys: tuple[str, ...] = (),
                description: str) -> dg.AssetChecksDefinition:
    """The asset's checks as one step named `<asset key>_checks`; each judge gets (context, the asset's value,
    *the resources named in resource_keys, in that order)."""
    by_name = {c.name: c for c in checks}

    @dg.multi_asset_check(
        specs=[dg.AssetCheckSpec(c.name, asset=asset, description=c.description, blocking=True)
               for c in checks],
        name=f"{asset.to_python_identifier()}_checks",
        description=description,
        can_subset=True,
        required_resource_keys=set(resource_keys),
        ins={"value": dg.AssetIn(key=asset)},
    )
    def _checks(context: dg.AssetCheckExecutionContext, value) -> Iterator[dg.AssetCheckResult]:
        resources = [getattr(context.resources, k) for k in resource_keys]  # resolved here, not in a worker
        selected = {name: check.judge for name, check in by_name.items()
                    if dg.AssetCheckKey(asset, name) in context.selected_asset_check_keys}
        if len(selected) < len(by_name):
            context.log.info(f"running {len(selected)} of {len(by_name)} checks: {', '.join(selected)}")
        yield from run_concurrently(asset, {n: _bound(judge, context, value, resources)
                                            for n, judge in selected.items()})

    return _checks


def _bound(judge: Judge, context, value, resources: list) -> Callable[[], dg.AssetCheckResult]:
    return lambda: judge(context, value, *resources)


def run_concurrently(asset: dg.AssetKey, judges: Mapping[str, Callable[[], dg.AssetCheckResult]]
                     ) -> Iterator[dg.AssetCheckResult]:
    """Each judge in its own thread; each result yielded, named for its check, as soon as it is known. A judge
    that raises does not silence the others: they all report first, then the step fails with its error (and
    Dagster records that check's execution as failed, as when it was a step of its own)."""
    errors: list[tuple[str, BaseException]] = []
    with ThreadPoolExecutor(max_workers=max(1, len(judges)), thread_name_prefix="asset-check") as pool:
        futures = {pool.submit(judge): name for name, judge in judges.items()}
        for done in as_completed(futures):
            name = futures[done]
            try:
                result = done.result()
            except Exception as exc:  # noqa: BLE001 - re-raised below, after the other checks reported
                errors.append((name, exc))
                continue
            yield dg.AssetCheckResult(passed=result.passed, asset_key=asset, check_name=name,
                                      metadata=result.metadata, severity=result.severity,
                                      description=result.description)
    if errors:
        name, exc = errors[0]
        others = [n for n, _ in errors[1:]]
        exc.add_note(f"raised by check {name!r} of {asset.to_user_string()}"
                     + (f" (also raised: {', '.join(others)})" if others else ""))
        raise exc
