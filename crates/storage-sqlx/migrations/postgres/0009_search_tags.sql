-- The blind search index: for each current version, the keyed HMAC tags of its search values
-- (crates/search). Never a value in clear: equal values give equal tags, nothing more.
CREATE TABLE ingest.search_tags (
    tag BYTEA NOT NULL,
    resource_type TEXT NOT NULL,
    id TEXT NOT NULL,
    PRIMARY KEY (tag, resource_type, id)
);

CREATE INDEX search_tags_record ON ingest.search_tags (resource_type, id);

-- Searches sort and page by (last_updated, id) of the current version.
CREATE INDEX record_versions_updated ON ingest.record_versions (resource_type, last_updated, id);
