-- mailgate on PostgreSQL, schema version 2: server-wide jobs (ACME orders, ending
-- time-limited grants, deleting organizations, pruning the audit log) run by one node at a
-- time, under a lease that its holder renews (PgStore::hold_job).
CREATE TABLE job_leases (
    name text PRIMARY KEY,
    node bigint NOT NULL,
    until bigint NOT NULL
);
