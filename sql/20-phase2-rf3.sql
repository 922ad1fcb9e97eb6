-- Phase 2: three nodes, three voters per range, no read replicas left.
-- Replication itself is set by the pipeline from the phase table, with zone configs (evolution_pipeline/zones.py):
--   ALTER RANGE default CONFIGURE ZONE USING num_replicas = 3, num_voters = 3, voter_constraints = '[]';
--   ALTER DATABASE system / RANGE meta / RANGE system / RANGE liveness CONFIGURE ZONE USING
--     num_replicas = 5, num_voters = 5, voter_constraints = '[]';
-- (5 is CockroachDB's default for system ranges; on 3 nodes the allocator targets 3 voters. The explicit
-- num_voters and the emptied voter_constraints undo phase 1's one pinned voter.)
--
-- This file spreads the write-heavy table over the three nodes: four ranges split on the UUID key space,
-- then scattered so their leases and replicas do not all sit on the first node. Random UUID keys already
-- avoid a hot tail; the splits just let the load reach all three leaseholders at once.
-- Idempotent: splitting at an existing boundary is a no-op, scattering again only rebalances.
ALTER TABLE login_events SPLIT AT VALUES ('40000000-0000-0000-0000-000000000000'), ('80000000-0000-0000-0000-000000000000'), ('c0000000-0000-0000-0000-000000000000');
ALTER TABLE login_events SCATTER;
