-- Who this database is. The id is drawn once, when the file is migrated; a database lost and
-- created again draws another, so the Redis progress keys of its bulk sends
-- (`mailworker:progress:<instance>:<id>`) never meet those of the lost one even though
-- `mail_jobs.id` starts at 1 again. The web refuses to keep working on a file whose id is
-- not the one it started with. The secret signs the session cookie that CSRF tokens are
-- bound to.
CREATE TABLE instance (
  singleton  INTEGER PRIMARY KEY CHECK (singleton = 1),
  id         TEXT NOT NULL,
  secret     BLOB NOT NULL CHECK (length(secret) = 32),
  created_at TEXT NOT NULL
);
INSERT INTO instance (singleton, id, secret, created_at)
VALUES (1, lower(hex(randomblob(16))), randomblob(32), strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));

-- The instance a send's jobs carry. NULL for sends recorded before this migration: their jobs
-- carry no instance and are counted under the bare id.
ALTER TABLE mail_jobs ADD COLUMN instance TEXT;
