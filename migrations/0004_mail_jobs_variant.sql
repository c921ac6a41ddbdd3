-- The A/B experiment (Unleash `send_strategy`): which arm a send belonged to, and when its
-- last job ended, so the page can compare the arms' time to complete and mails per second.
--
-- variant: `default` or `priority` as the flags decided when the send was made (the fallback,
-- `default`, while Unleash was unreachable); NULL for sends made before this migration or
-- with a queue named in the request (outside the experiment). The queue the jobs went to is
-- `queue`, as before.
-- finished_at: when the worker finished the send's last job (its Redis clock, RFC 3339 UTC),
-- copied here once the send is done; NULL while it runs.
ALTER TABLE mail_jobs ADD COLUMN variant TEXT;
ALTER TABLE mail_jobs ADD COLUMN finished_at TEXT;
