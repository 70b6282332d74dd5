-- mailgate on PostgreSQL, schema version 4: a queue lease's token is the random 64-bit number
-- the leasing node makes (QueueStore::lease), not a uuid as version 1 had it. Leases held
-- while a node upgrades are dropped with their tokens: their entries are attempted again
-- once `lease_until` has passed.
ALTER TABLE queue ALTER COLUMN lease_token TYPE bigint USING NULL;
