-- Bulk sends (the seed's `mail_jobs` table). Live counters are kept by the worker in Redis
-- (`mailworker:progress:<id>`); the counts here are the last copy the web took, so history
-- outlives the Redis TTL.
--
-- AUTOINCREMENT so an id is never reused: the id names the Redis progress hash.
CREATE TABLE mail_jobs (
  id             INTEGER PRIMARY KEY AUTOINCREMENT,
  job_id         TEXT,
  total_count    INTEGER NOT NULL CHECK (total_count > 0),
  sent_count     INTEGER NOT NULL DEFAULT 0,
  failed_count   INTEGER NOT NULL DEFAULT 0,
  retrying_count INTEGER NOT NULL DEFAULT 0,
  status         TEXT NOT NULL DEFAULT 'pending'
                 CHECK (status IN ('pending', 'processing', 'completed', 'failed')),
  queue          TEXT NOT NULL DEFAULT 'default',
  simulate_error INTEGER NOT NULL DEFAULT 0,
  created_at     TEXT NOT NULL,
  updated_at     TEXT NOT NULL
);
CREATE INDEX index_mail_jobs_on_job_id ON mail_jobs (job_id);
CREATE INDEX index_mail_jobs_on_status ON mail_jobs (status);
