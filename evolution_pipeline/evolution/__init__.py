"""The bottom of the house: the evolution model, its loader and validator, the survival arithmetic and the
role model. Imports nothing from ops, drills, rotation, resources or Dagster, so everything can import it."""

from .load import DEFAULT_PLAN, PLAN_VARIABLE, EvolutionError, load_evolution, plan_path
from .model import Evolution, Phase, Replication, Survives
from .survival import zone_survivable

__all__ = ["DEFAULT_PLAN", "PLAN_VARIABLE", "Evolution", "EvolutionError", "Phase", "Replication", "Survives",
           "load_evolution", "plan_path", "zone_survivable"]
