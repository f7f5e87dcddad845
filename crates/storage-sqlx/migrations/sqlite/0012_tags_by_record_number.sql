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
ALTER TABLE record_heads ADD COLUMN rec INTEGER;

UPDATE record_heads SET rec = n.r
FROM (SELECT resource_type, id, ROW_NUMBER() OVER (ORDER BY resource_type, id) AS r
      FROM record_heads) AS n
WHERE n.resource_type = record_heads.resource_type AND n.id = record_heads.id;

-- Unique, and the way from a matching tag back to its record.
CREATE UNIQUE INDEX record_heads_rec ON record_heads (rec);

CREATE TABLE record_tags (
    rec INTEGER PRIMARY KEY,
    tags BLOB NOT NULL,
    merged INTEGER NOT NULL
);

CREATE INDEX record_tags_pending ON record_tags (rec) WHERE merged = 0;

INSERT INTO record_tags (rec, tags, merged)
SELECT rec, tags, 1 FROM record_heads WHERE tags IS NOT NULL AND length(tags) > 0;

CREATE TABLE search_tags_by_rec (
    tag BLOB NOT NULL,
    rec INTEGER NOT NULL,
    PRIMARY KEY (tag, rec)
) WITHOUT ROWID;

INSERT INTO search_tags_by_rec (tag, rec)
SELECT t.tag, h.rec FROM search_tags t
JOIN record_heads h ON h.resource_type = t.resource_type AND h.id = t.id;

DROP TABLE search_tags;
ALTER TABLE search_tags_by_rec RENAME TO search_tags;
ALTER TABLE record_heads DROP COLUMN tags;
