-- Jobs of a send deleted before they ran (a queue or a job deleted from the Sidekiq admin):
-- the worker counts them in the send's progress as `cancelled`, and the web copies the count
-- here, so a send ends with sent + failed + cancelled = total instead of staying pending.
ALTER TABLE mail_jobs ADD COLUMN cancelled_count INTEGER NOT NULL DEFAULT 0;
