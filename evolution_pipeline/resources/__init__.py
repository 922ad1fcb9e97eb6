"""Resources: each one a door to the outside world. Ops reach the world only through these."""
