-- Addresses (the seed's `emails` table). The email is unique regardless of case: the same
-- mailbox spelled User@X and user@x must not be mailed twice by one bulk send.
CREATE TABLE emails (
  id         INTEGER PRIMARY KEY,
  email      TEXT NOT NULL COLLATE NOCASE,
  name       TEXT NOT NULL,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL
);
CREATE UNIQUE INDEX index_emails_on_email ON emails (email);
