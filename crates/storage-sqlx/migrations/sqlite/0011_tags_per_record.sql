-- Each record's current tags, packed (16 bytes each) on its head row, replace the secondary index
-- on search_tags (resource_type, id): an update or delete removes exactly the old tags by their
-- primary key, and a write dirties one b-tree of tag rows instead of two.
ALTER TABLE record_heads ADD COLUMN tags BLOB;

UPDATE record_heads SET tags = (
    SELECT unhex(group_concat(hex(t.tag), ''))
    FROM search_tags t
    WHERE t.resource_type = record_heads.resource_type AND t.id = record_heads.id
);

DROP INDEX search_tags_record;
