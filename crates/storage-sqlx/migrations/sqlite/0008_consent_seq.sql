-- `consent_versions.seq` (the registrar's order) assigned by the database, as PostgreSQL's
-- identity column does, so the insert is the same on both backends: the row's rowid, which only
-- grows here (rows are never deleted) and equals the seq of every earlier row.
CREATE TRIGGER consent_versions_seq AFTER INSERT ON consent_versions
WHEN NEW.seq IS NULL
BEGIN
    UPDATE consent_versions SET seq = NEW.rowid WHERE rowid = NEW.rowid;
END;
