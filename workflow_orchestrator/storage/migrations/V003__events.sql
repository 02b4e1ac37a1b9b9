-- Event processing: the database event source, deduplication, the subscriptions of instances
-- waiting in `listen`, their inboxes, retained unmatched events, dead letters and the
-- transactional outbox. See docs/architecture.md ("Events") for how the router uses them.

-- The database source. Producers call workflow_publish_event(event jsonb) (or insert rows
-- directly); the service claims rows with FOR UPDATE SKIP LOCKED under a short claim, routes
-- them and deletes them in the routing transaction. A row trigger wakes the service with
-- NOTIFY workflow_events (PostgreSQL sends one notification per transaction for identical
-- ones); the service also polls, so a lost notification only delays.
CREATE TABLE events (
    event_seq      bigserial   PRIMARY KEY,
    event          jsonb       NOT NULL,
    received_at    timestamptz NOT NULL DEFAULT now(),
    claimed_by     text,
    claimed_until  timestamptz
);

CREATE FUNCTION workflow_events_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('workflow_events', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER events_notify AFTER INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION workflow_events_notify();

-- Publish one CloudEvent (structured JSON form) to the database source; returns its sequence.
-- Checks the attributes CloudEvents 1.0 requires, so a producer learns of a broken event at
-- once instead of finding it in event_dead_letters later.
CREATE FUNCTION workflow_publish_event(event jsonb) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    attribute text;
    seq bigint;
BEGIN
    IF event IS NULL OR jsonb_typeof(event) <> 'object' THEN
        RAISE EXCEPTION 'a CloudEvent must be a JSON object'
            USING HINT = 'pass the structured form: {"specversion": "1.0", "id": ..., "source": ..., "type": ...}';
    END IF;
    FOREACH attribute IN ARRAY ARRAY['specversion', 'id', 'source', 'type'] LOOP
        IF jsonb_typeof(event -> attribute) IS DISTINCT FROM 'string' OR event ->> attribute = '' THEN
            RAISE EXCEPTION 'the CloudEvent attribute "%" is missing or not a non-empty string', attribute
                USING HINT = 'CloudEvents 1.0 requires specversion, id, source and type';
        END IF;
    END LOOP;
    IF event ->> 'specversion' <> '1.0' THEN
        RAISE EXCEPTION 'specversion "%" is not supported', event ->> 'specversion'
            USING HINT = 'set "specversion": "1.0"';
    END IF;
    INSERT INTO events (event) VALUES (event) RETURNING event_seq INTO seq;
    RETURN seq;
END
$$;

-- Events routed already, by (source, id), kept for eventProcessing.deduplicationWindow.
CREATE TABLE processed_events (
    source        text        NOT NULL,
    id            text        NOT NULL,
    processed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, id)
);
CREATE INDEX processed_events_by_time ON processed_events (processed_at);

-- The distinct correlation shapes of listen filters: an event type ('' = any type) and the
-- sorted [name, from-expression] pairs of its `correlate`. Few rows; the router caches them.
CREATE TABLE subscription_shapes (
    shape_id    serial  PRIMARY KEY,
    event_type  text    NOT NULL,
    correlate   jsonb   NOT NULL,
    UNIQUE (event_type, correlate)
);

-- One row per filter an instance waits on, written and deleted with the instance's snapshots.
-- An event looks up (event_type, shape_id, corr_key) with the key it computes for each shape,
-- so matching does not grow with the number of waiting instances. shape_id 0: no correlation;
-- corr_key '': any value (the correlation is not fixed yet). attributes: the filter's static
-- context attributes (besides type), checked by containment.
CREATE TABLE event_subscriptions (
    instance_id   uuid        NOT NULL,
    partition     integer     NOT NULL,
    filter_index  integer     NOT NULL,
    task_ref      text        NOT NULL,
    event_type    text        NOT NULL,
    shape_id      integer     NOT NULL,
    corr_key      text        NOT NULL,
    attributes    jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX event_subscriptions_by_key ON event_subscriptions (event_type, shape_id, corr_key);
CREATE INDEX event_subscriptions_by_instance ON event_subscriptions (instance_id);

-- Events delivered to an instance and not consumed yet (consumed ones are deleted by the
-- snapshot that consumed them).
CREATE TABLE instance_inbox (
    inbox_seq    bigserial   PRIMARY KEY,
    instance_id  uuid        NOT NULL,
    event_key    text        NOT NULL,
    event        jsonb       NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (instance_id, event_key)
);

-- Definitions started by `schedule.on` with `all`: the events collected so far per definition
-- version and correlation key (a JSON array, one slot per filter, null while missing). The
-- routing transaction that fills the last slot starts the instance and deletes the row.
CREATE TABLE event_start_progress (
    definition_id       text        NOT NULL,
    definition_version  text        NOT NULL,
    corr_key            text        NOT NULL,
    events              jsonb       NOT NULL,
    updated_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (definition_id, definition_version, corr_key)
);

-- Events that matched nothing, kept for eventProcessing.unmatchedRetention (0: not kept).
CREATE TABLE unmatched_events (
    event_key    text        PRIMARY KEY,
    event_type   text        NOT NULL,
    event        jsonb       NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX unmatched_events_by_type ON unmatched_events (event_type, received_at);

-- Messages that are not valid CloudEvents, from the database source or HTTP (RabbitMQ has its
-- own dead-letter queue), with the reason.
CREATE TABLE event_dead_letters (
    dead_letter_id  bigserial   PRIMARY KEY,
    source_kind     text        NOT NULL,
    reason          text        NOT NULL,
    payload         text        NOT NULL,
    received_at     timestamptz NOT NULL DEFAULT now()
);

-- The transactional outbox: emitted events (exchange 'business') and lifecycle events
-- ('system'), inserted with the snapshot that produced them; the relay of the partition's owner
-- publishes them in outbox_seq order and deletes them.
CREATE TABLE outbox (
    outbox_seq   bigserial   PRIMARY KEY,
    partition    integer     NOT NULL,
    instance_id  uuid        NOT NULL,
    exchange     text        NOT NULL CHECK (exchange IN ('business', 'system')),
    routing_key  text        NOT NULL,
    event_id     text        NOT NULL,
    body         text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX outbox_by_partition ON outbox (partition, outbox_seq);
