"""Test doubles, only for what cannot run on this machine (CockroachDB, a Kubernetes API server).

Each double follows CockroachDB's / Kubernetes' documented behaviour; see its module docstring for what it
does and does not prove.
"""
