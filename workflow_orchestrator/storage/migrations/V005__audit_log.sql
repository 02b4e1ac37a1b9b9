-- The audit log: one row per change asked of the API (registering or deleting a definition,
-- starting or commanding an instance, posting events), refused ones included: who asked
-- (principal and how they authenticated), what (action and target), in which namespace, when,
-- and the outcome (the HTTP status). Admins read it through GET /api/v1/audit-log.
CREATE TABLE audit_log (
    seq         bigserial   PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    principal   text        NOT NULL,
    via         text        NOT NULL,
    action      text        NOT NULL,
    target      text        NOT NULL DEFAULT '',
    namespace   text,
    status      integer     NOT NULL,
    outcome     text        NOT NULL,
    remote      text        NOT NULL DEFAULT '',
    request_id  text        NOT NULL DEFAULT '',
    details     jsonb       NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX audit_log_principal ON audit_log (principal, seq);
