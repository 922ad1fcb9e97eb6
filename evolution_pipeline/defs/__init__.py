"""The code location's definitions, one module per concern, found by `dg.load_from_defs_folder`.

pyproject.toml's [tool.dg.project] names this package (root_module evolution_pipeline, defs module
evolution_pipeline.defs). Each module declares its concern with a `@dg.definitions` function that calls the
factories where the code lives (assets.py, checks.py, drills/, rotation/, jobs.py, sensors.py):

- phases.py: each environment's phase assets (and the rehearsal reset) with their blocking checks;
- drills.py: the rehearsal's drills and report, with their checks;
- rotation.py: credential rotation's assets, checks, jobs and schedule;
- jobs.py: evolve, rehearse, the report-only job and the nightly rehearsal schedule;
- sensors.py: the run-failure alert and the report-after-failure sensor.

Resources and the executor are not here: the caller chooses them (definitions.py: build_definitions).
"""
