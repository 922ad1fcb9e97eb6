-- Portable schema and seed for the sample app, run inside the `app` database.
-- Valid on CockroachDB and on PostgreSQL 13+ unchanged, and idempotent: it only creates what
-- is missing and never drops or rewrites data, so the pipeline can run it in every phase.
-- Rules for editing (the pipeline splits this file on semicolons at line ends):
--   * no semicolons inside string literals or comments
--   * no CREATE DATABASE, users, grants or zone configs here (those are the pipeline's phase files)
--   * random UUID keys only (sequential keys make one hot range in CockroachDB)

-- Write-heavy: one row per login. No raw IP or user agent, only salted hashes.
CREATE TABLE IF NOT EXISTS login_events (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id TEXT NOT NULL,
    ts TIMESTAMPTZ NOT NULL DEFAULT now(),
    ip_hash TEXT NOT NULL,
    ua_hash TEXT NOT NULL
);

-- "Last logins of a user" reads walk this index, user first so writes spread across ranges.
CREATE INDEX IF NOT EXISTS login_events_user_ts_idx ON login_events (user_id, ts);

-- Read-heavy: the prefix search. The UNIQUE constraint's index on term also serves the
-- range predicate (term >= 'abc' AND term < 'abd') the app uses for prefix search.
CREATE TABLE IF NOT EXISTS search_terms (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    term TEXT NOT NULL,
    popularity INT NOT NULL DEFAULT 0,
    CONSTRAINT search_terms_term_key UNIQUE (term)
);

-- 12,000 deterministic terms such as 'amber delta 00042': the same rows on every run and on
-- both databases (generate_series, modulo and lpad behave the same), so re-running inserts nothing.
INSERT INTO search_terms (term, popularity)
SELECT
    (ARRAY['amber', 'basil', 'cedar', 'delta', 'ember', 'fjord', 'garnet', 'harbor', 'indigo',
           'juniper', 'kelp', 'lumen', 'maple', 'nectar', 'onyx', 'pepper', 'quartz', 'raven',
           'saffron', 'tundra', 'umber', 'velvet', 'willow', 'xenon', 'yarrow', 'zephyr'])[1 + g.i % 26]
    || ' ' ||
    (ARRAY['alpha', 'bravo', 'charlie', 'echo', 'foxtrot', 'golf', 'hotel', 'india', 'kilo',
           'lima', 'mike', 'november', 'oscar', 'papa', 'quebec', 'romeo', 'sierra', 'tango',
           'victor'])[1 + g.i % 19]
    || ' ' || lpad(CAST(g.i AS TEXT), 5, '0'),
    (g.i * 7919) % 1000
FROM generate_series(1, 12000) AS g(i)
ON CONFLICT (term) DO NOTHING;
