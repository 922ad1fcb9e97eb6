"""HTTP blueprints, one module per concern: login, search, spike, health, control, ui."""
