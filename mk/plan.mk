# The plan (evolution_pipeline/plan.py): what each phase would do, read-only, before it does it.
.PHONY: plan

PLAN_ARGS ?=

plan: setup ## show what each phase would change against the current cluster (PLAN_ARGS="phase1_two_nodes --format markdown")
	@$(PY) -m evolution_pipeline plan $(PLAN_ARGS)
