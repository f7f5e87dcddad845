-- Each record's current tags, packed (16 bytes each) on its head row, replace the secondary index
-- on search_tags (resource_type, id): an update or delete removes exactly the old tags by their
-- primary key, and a write dirties one b-tree of tag rows instead of two.
ALTER TABLE ingest.record_heads ADD COLUMN tags BYTEA;

UPDATE ingest.record_heads h SET tags = (
    SELECT string_agg(t.tag, ''::bytea ORDER BY t.tag)
    FROM ingest.search_tags t
    WHERE t.resource_type = h.resource_type AND t.id = h.id
);

DROP INDEX ingest.search_tags_record;
