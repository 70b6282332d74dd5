-- mailgate on PostgreSQL, schema version 3: which node runs an import (its lasting name,
-- kept in its data directory), so that a node starting interrupts only the imports its own
-- last run left, not those another node is running.
ALTER TABLE imports ADD COLUMN runner bigint;
