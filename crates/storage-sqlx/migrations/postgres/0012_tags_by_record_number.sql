-- Each record gets a number (`rec`); tag rows name it instead of (resource_type, id), about 25
-- bytes a row instead of about 70 (the type is hashed into every tag, so it need not be here).
--
-- And a write no longer inserts into search_tags. A write's tags land on random leaves of that
-- b-tree, so a transaction dirtied (and wrote twice: WAL, checkpoint) about a page per tag.
-- Instead the write files its record's tag list in `record_tags` (one row, at the end of the
-- table: records are numbered in order) as pending (`merged = 0`); searches scan the pending
-- lists beside search_tags, and ingest merges them into search_tags in batches, where each page
-- is written once for many records (`SearchIndex::merge_pending`). `merged` is an integer so
-- that the partial index's condition is the same literal in both dialects.
CREATE SEQUENCE ingest.record_numbers;

ALTER TABLE ingest.record_heads ADD COLUMN rec BIGINT;
UPDATE ingest.record_heads SET rec = nextval('ingest.record_numbers');
ALTER TABLE ingest.record_heads ALTER COLUMN rec SET NOT NULL;

-- Unique, and the way from a matching tag back to its record.
CREATE UNIQUE INDEX record_heads_rec ON ingest.record_heads (rec);

CREATE TABLE ingest.record_tags (
    rec BIGINT PRIMARY KEY,
    tags BYTEA NOT NULL,
    merged BIGINT NOT NULL
);

CREATE INDEX record_tags_pending ON ingest.record_tags (rec) WHERE merged = 0;

INSERT INTO ingest.record_tags (rec, tags, merged)
SELECT rec, tags, 1 FROM ingest.record_heads WHERE tags IS NOT NULL AND length(tags) > 0;

CREATE TABLE ingest.search_tags_by_rec (
    tag BYTEA NOT NULL,
    rec BIGINT NOT NULL,
    CONSTRAINT search_tags_by_rec_pkey PRIMARY KEY (tag, rec)
);

INSERT INTO ingest.search_tags_by_rec (tag, rec)
SELECT t.tag, h.rec FROM ingest.search_tags t
JOIN ingest.record_heads h ON h.resource_type = t.resource_type AND h.id = t.id;

DROP TABLE ingest.search_tags;
ALTER TABLE ingest.search_tags_by_rec RENAME TO search_tags;
ALTER TABLE ingest.record_heads DROP COLUMN tags;
