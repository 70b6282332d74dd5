-- mailgate on PostgreSQL, schema version 1 (ARCHITECTURE.md §6).
-- Real tables with the constraints that keep the model whole: unique addresses and logins,
-- foreign keys, checked enumerations. Times are milliseconds since the epoch (bigint), as the
-- model's `Millis`; identifiers are bigint from one sequence, as sled's generated ids.

CREATE SEQUENCE ids START 1;

-- ----- the directory -----

CREATE TABLE organizations (
    id bigint PRIMARY KEY,
    name text NOT NULL,
    created bigint NOT NULL,
    suspended_since bigint,
    deletion_due bigint,
    CHECK (deletion_due IS NULL OR suspended_since IS NOT NULL)
);

CREATE TABLE domains (
    name text PRIMARY KEY,
    org bigint NOT NULL REFERENCES organizations ON DELETE CASCADE
);

-- A domain added with a token takes mail once the token is seen in its DNS.
CREATE TABLE domain_claims (
    domain text PRIMARY KEY REFERENCES domains ON DELETE CASCADE,
    token text NOT NULL,
    verified bigint
);

CREATE TABLE users (
    id bigint PRIMARY KEY,
    login text NOT NULL,
    login_key text NOT NULL UNIQUE, -- the login as compared (case folded, IDNA), as sled keys it
    display_name text NOT NULL,
    password text NOT NULL,
    must_change_password boolean NOT NULL,
    disabled boolean NOT NULL,
    created bigint NOT NULL,
    operator boolean NOT NULL DEFAULT false
);

CREATE TABLE memberships (
    org bigint NOT NULL REFERENCES organizations ON DELETE CASCADE,
    user_id bigint NOT NULL REFERENCES users ON DELETE CASCADE,
    role text NOT NULL CHECK (role IN ('owner', 'admin', 'collaborator', 'external')),
    PRIMARY KEY (org, user_id)
);

CREATE TABLE mailboxes (
    id bigint PRIMARY KEY,
    org bigint NOT NULL REFERENCES organizations ON DELETE CASCADE,
    address text NOT NULL UNIQUE,
    display_name text NOT NULL,
    password text NOT NULL,
    quota_bytes bigint NOT NULL CHECK (quota_bytes >= 0),
    seen text NOT NULL CHECK (seen IN ('shared', 'per_user')),
    created bigint NOT NULL,
    usage_bytes bigint NOT NULL DEFAULT 0 CHECK (usage_bytes >= 0)
);

-- Mailboxes' own addresses and aliases share one namespace: each address names one mailbox
-- (of the alias's organization: the mailbox's).
CREATE TABLE addresses (
    address text PRIMARY KEY,
    mailbox bigint NOT NULL REFERENCES mailboxes ON DELETE CASCADE,
    alias boolean NOT NULL
);
CREATE INDEX addresses_of_mailbox ON addresses (mailbox);

CREATE TABLE teams (
    id bigint PRIMARY KEY,
    org bigint NOT NULL REFERENCES organizations ON DELETE CASCADE,
    name text NOT NULL -- not unique, as in sled's store: a team is known by its id
);

CREATE TABLE team_members (
    team bigint NOT NULL REFERENCES teams ON DELETE CASCADE,
    user_id bigint NOT NULL REFERENCES users ON DELETE CASCADE,
    PRIMARY KEY (team, user_id)
);

-- A grant goes to a user or a team, on one mailbox or (target NULL) all of the organization's.
CREATE TABLE grants (
    id bigint PRIMARY KEY,
    org bigint NOT NULL REFERENCES organizations ON DELETE CASCADE,
    grantee_user bigint REFERENCES users ON DELETE CASCADE,
    grantee_team bigint REFERENCES teams ON DELETE CASCADE,
    mailbox bigint REFERENCES mailboxes ON DELETE CASCADE,
    rights integer NOT NULL,
    send text CHECK (send IN ('as', 'on_behalf')),
    created bigint NOT NULL,
    valid_from bigint,
    valid_until bigint,
    CHECK ((grantee_user IS NULL) <> (grantee_team IS NULL)),
    CHECK (valid_from IS NULL OR valid_until IS NULL OR valid_from < valid_until)
);
CREATE INDEX grants_of_user ON grants (grantee_user);
CREATE INDEX grants_of_team ON grants (grantee_team);
CREATE INDEX grants_on_mailbox ON grants (mailbox);
CREATE INDEX grants_ending ON grants (valid_until) WHERE valid_until IS NOT NULL;

CREATE TABLE partnerships (
    id bigint PRIMARY KEY,
    client bigint NOT NULL REFERENCES organizations ON DELETE CASCADE,
    partner bigint NOT NULL REFERENCES organizations ON DELETE CASCADE,
    full_scope boolean NOT NULL,
    status text NOT NULL CHECK (status IN ('invited', 'accepted', 'refused', 'ended')),
    created bigint NOT NULL,
    CHECK (client <> partner)
);

-- The mailboxes of a limited partnership.
CREATE TABLE partnership_mailboxes (
    partnership bigint NOT NULL REFERENCES partnerships ON DELETE CASCADE,
    mailbox bigint NOT NULL REFERENCES mailboxes ON DELETE CASCADE,
    PRIMARY KEY (partnership, mailbox)
);

CREATE TABLE invitations (
    token_hash bytea PRIMARY KEY CHECK (length(token_hash) = 32),
    org bigint NOT NULL REFERENCES organizations ON DELETE CASCADE,
    email text NOT NULL,
    role text NOT NULL CHECK (role IN ('owner', 'admin', 'collaborator', 'external')),
    teams bigint[] NOT NULL,
    grants jsonb NOT NULL,
    invited_by bigint NOT NULL REFERENCES users ON DELETE CASCADE,
    expires bigint NOT NULL
);

CREATE TABLE api_tokens (
    token_hash bytea PRIMARY KEY CHECK (length(token_hash) = 32),
    user_id bigint NOT NULL REFERENCES users ON DELETE CASCADE,
    name text, -- a personal token's; NULL for a session
    created bigint NOT NULL,
    expires bigint,
    password_change_only boolean NOT NULL
);

CREATE TABLE dkim_keys (
    domain text NOT NULL REFERENCES domains ON DELETE CASCADE,
    selector text NOT NULL,
    algorithm text NOT NULL CHECK (algorithm IN ('ed25519', 'rsa')),
    state text NOT NULL CHECK (state IN ('next', 'active', 'retiring')),
    created bigint NOT NULL,
    public_key text NOT NULL,
    private_der bytea NOT NULL,
    PRIMARY KEY (domain, selector)
);
CREATE UNIQUE INDEX one_active_dkim_key_per_algorithm ON dkim_keys (domain, algorithm)
    WHERE state = 'active';

-- Outlives what it records: no foreign keys.
CREATE TABLE audit (
    id bigint PRIMARY KEY,
    at bigint NOT NULL,
    org bigint,
    actor jsonb NOT NULL,
    action text NOT NULL,
    target text NOT NULL,
    client text,
    outcome text NOT NULL CHECK (outcome IN ('success', 'failure')),
    detail text NOT NULL
);
CREATE INDEX audit_by_time ON audit (at);
CREATE INDEX audit_by_org ON audit (org, at);

-- ----- mail -----

-- Message bytes, content-addressed (SHA-256), stored once however many messages hold them,
-- in chunks so that a partial FETCH reads only the chunks it needs.
CREATE TABLE blobs (
    id bytea PRIMARY KEY CHECK (length(id) = 32),
    size bigint NOT NULL CHECK (size >= 0),
    refs bigint NOT NULL CHECK (refs >= 0),
    summary bytea -- what delivery parsed (envelope, body structure), a cache of the bytes
);

CREATE TABLE blob_chunks (
    blob bytea NOT NULL REFERENCES blobs ON DELETE CASCADE,
    n integer NOT NULL CHECK (n >= 0),
    data bytea NOT NULL,
    PRIMARY KEY (blob, n)
);

-- UIDVALIDITY is set once, at creation. UIDNEXT and HIGHESTMODSEQ move only in the
-- transaction that adds or changes messages, through `UPDATE folders … RETURNING`, which
-- holds the folder's row until commit: commit order is UID and MODSEQ order.
CREATE TABLE folders (
    id bigint PRIMARY KEY,
    mailbox bigint NOT NULL REFERENCES mailboxes ON DELETE CASCADE,
    name text NOT NULL,
    name_key text NOT NULL, -- the name as compared (INBOX in any case is INBOX)
    special_use text CHECK (special_use IN ('Sent', 'Drafts', 'Trash', 'Junk', 'Archive')),
    uidvalidity bigint NOT NULL CHECK (uidvalidity > 0 AND uidvalidity < 4294967296),
    uidnext bigint NOT NULL CHECK (uidnext > 0 AND uidnext < 4294967296),
    highestmodseq bigint NOT NULL,
    recent_floor bigint NOT NULL DEFAULT 1,
    -- Expunges up to this MODSEQ are forgotten (`expunges`).
    expunges_forgotten_through bigint NOT NULL DEFAULT 0,
    UNIQUE (mailbox, name_key)
);

-- The last UIDVALIDITY given: each new folder's is larger than any before (RFC 3501
-- §2.3.1.1), the time in seconds or one more than the last.
CREATE TABLE uidvalidity (last bigint NOT NULL CHECK (last < 4294967296));
INSERT INTO uidvalidity (last) VALUES (0);

CREATE TABLE messages (
    folder bigint NOT NULL REFERENCES folders ON DELETE CASCADE,
    uid bigint NOT NULL CHECK (uid > 0 AND uid < 4294967296),
    flags smallint NOT NULL,
    keywords text[] NOT NULL,
    internal_date bigint NOT NULL,
    size bigint NOT NULL,
    modseq bigint NOT NULL,
    blob bytea NOT NULL REFERENCES blobs,
    saved bigint NOT NULL,
    PRIMARY KEY (folder, uid)
);
CREATE INDEX messages_by_modseq ON messages (folder, modseq);

-- `\Seen` per user, for mailboxes that keep it so.
CREATE TABLE user_seen (
    folder bigint NOT NULL,
    uid bigint NOT NULL,
    user_id bigint NOT NULL REFERENCES users ON DELETE CASCADE,
    PRIMARY KEY (folder, uid, user_id),
    FOREIGN KEY (folder, uid) REFERENCES messages ON DELETE CASCADE
);

-- What was expunged, by MODSEQ, for QRESYNC (RFC 7162 §3.2.5); the oldest are forgotten.
CREATE TABLE expunges (
    folder bigint NOT NULL REFERENCES folders ON DELETE CASCADE,
    uid bigint NOT NULL,
    modseq bigint NOT NULL,
    PRIMARY KEY (folder, uid)
);
CREATE INDEX expunges_by_modseq ON expunges (folder, modseq);

-- Subscriptions by name (RFC 3501 §6.3.6: a name may be subscribed without a folder).
-- subscriber 0 is the mailbox's own login, any other a user (so no foreign key: a user's
-- subscriptions go with the user in the same transaction).
CREATE TABLE subscriptions (
    mailbox bigint NOT NULL REFERENCES mailboxes ON DELETE CASCADE,
    subscriber bigint NOT NULL,
    name text NOT NULL,
    subscribed boolean NOT NULL, -- false: explicitly not (a standard folder's default undone)
    PRIMARY KEY (mailbox, subscriber, name)
);

CREATE TABLE imports (
    id bigint PRIMARY KEY,
    org bigint NOT NULL REFERENCES organizations ON DELETE CASCADE,
    mailbox bigint NOT NULL REFERENCES mailboxes ON DELETE CASCADE,
    state text NOT NULL CHECK (state IN ('running', 'interrupted', 'done')),
    progress jsonb NOT NULL -- folders, failures and counts, rewritten with each batch
);

-- ----- delivery -----

-- The outbound queue, shared by the nodes. A node claims an entry with a lease
-- (`FOR UPDATE SKIP LOCKED`), committed before any SMTP and renewed during delivery; every
-- status write checks the lease's token.
CREATE TABLE queue (
    id bigint PRIMARY KEY,
    blob bytea NOT NULL REFERENCES blobs,
    sender text NOT NULL,
    domain text NOT NULL,
    recipients text[] NOT NULL,
    created bigint NOT NULL,
    attempts integer NOT NULL DEFAULT 0,
    next_attempt bigint NOT NULL,
    last_error text,
    reasons text[] NOT NULL,
    dsn jsonb NOT NULL,
    held boolean NOT NULL,
    lease_token uuid,
    lease_until bigint
);
CREATE INDEX queue_due ON queue (next_attempt) WHERE NOT held;

-- ----- the server -----

-- Server secrets: the generated certificate, ACME certificates and account.
CREATE TABLE secrets (
    name text PRIMARY KEY,
    value bytea NOT NULL
);

-- Failed logins in fixed windows, by client address and by login, shared by the nodes.
CREATE TABLE login_failures (
    key text NOT NULL,
    window_start bigint NOT NULL,
    failures integer NOT NULL,
    PRIMARY KEY (key, window_start)
);
