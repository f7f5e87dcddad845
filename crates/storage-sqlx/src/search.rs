//! The blind search index: tags of current versions, and searches over them in keyset order.
//!
//! Every query here is built from the same pieces for both backends: `IN` over bound tags,
//! row comparisons for the keyset, `$n` placeholders numbered as they are bound.

use medledger_storage_api::{
    CompartmentQuery, HistoryQuery, IndexQuery, IndexTag, SearchIndex, StoreError, VersionRow,
};
use sqlx::Database;

use crate::dialect::{Bind, Decodes, Dialect};
use crate::rows::{self, stored};
use crate::{Scalar, SqlStore, err, execute, on, optional};

/// Tags inserted or deleted per statement: a multi-row statement per chunk keeps PostgreSQL to a
/// few round trips per record, well under both backends' bound-parameter limits.
const TAGS_PER_INSERT: usize = 300;

/// Replaces the tags of `resource_type/id` with `tags`, inside the caller's transaction: the
/// old ones are retired, the new ones filed as pending. Nothing when there is no such record.
pub(crate) async fn replace_tags<D: Dialect>(
    tx: &mut <D::Db as Database>::Connection,
    resource_type: &str,
    id: &str,
    tags: &[IndexTag],
) -> Result<(), StoreError> {
    match retire_tags::<D>(tx, resource_type, id).await? {
        Some(rec) => file_tags::<D>(tx, rec, tags, Filing::Pending).await,
        None => Ok(()),
    }
}

/// Retires the tags of `resource_type/id`'s current version, inside the caller's transaction:
/// its tag list and, if that was merged, its rows in `search_tags` (by their primary key, from
/// the list). The record's number, or `None` when there is no such record.
pub(crate) async fn retire_tags<D: Dialect>(
    tx: &mut <D::Db as Database>::Connection,
    resource_type: &str,
    id: &str,
) -> Result<Option<i64>, StoreError> {
    let rec: Option<Scalar<i64>> = optional::<D, (i64,), _>(
        tx,
        sqlx::query("SELECT rec FROM record_heads WHERE resource_type = $1 AND id = $2")
            .arg(resource_type)
            .arg(id),
    )
    .await?;
    let Some(Scalar(rec)) = rec else {
        return Ok(None);
    };
    // Locked: a merger holding this list finishes first, so its rows are seen and deleted.
    let listed = format!(
        "SELECT merged, tags FROM record_tags WHERE rec = $1{}",
        D::FOR_UPDATE
    );
    let listed: Option<Listed> =
        optional::<D, (i64, Vec<u8>), _>(tx, sqlx::query(sqlx::AssertSqlSafe(listed)).arg(rec))
            .await?;
    // A deleted record has no list.
    let Some(Listed(merged, listed)) = listed else {
        return Ok(Some(rec));
    };
    if merged != 0 {
        let tags = unpacked(rec, &listed)?;
        per_tag_chunk::<D>(
            tx,
            ["DELETE FROM search_tags WHERE rec = $1 AND tag IN (", ")"],
            |n| format!("${n}"),
            rec,
            &tags,
        )
        .await?;
    }
    execute::<D>(
        tx,
        sqlx::query("DELETE FROM record_tags WHERE rec = $1").arg(rec),
    )
    .await?;
    Ok(Some(rec))
}

/// How a write files its tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Filing {
    /// In `search_tags` at once, the list marked merged: a transaction of one record, whose
    /// few tags dirty a few pages either way, leaves no background work to compete with the
    /// next small write for the write lock.
    Direct,
    /// As a pending list only, merged later by [`merge_pending`] with others': a transaction
    /// of many records (a Bundle, an HL7 message), or a reindex.
    Pending,
}

/// Files `tags` for the record numbered `rec`, inside the caller's transaction, as `filing`
/// says; searches find them from the commit on either way (they scan pending lists).
pub(crate) async fn file_tags<D: Dialect>(
    tx: &mut <D::Db as Database>::Connection,
    rec: i64,
    tags: &[IndexTag],
    filing: Filing,
) -> Result<(), StoreError> {
    if tags.is_empty() {
        return Ok(());
    }
    if filing == Filing::Direct {
        let rows: Vec<&[u8]> = tags.iter().map(|t| t.as_slice()).collect();
        insert_tag_rows::<D>(tx, rec, &rows).await?;
    }
    let merged = if filing == Filing::Direct { 1 } else { 0 };
    execute::<D>(
        tx,
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO record_tags (rec, tags, merged) VALUES ($1, $2, {merged})"
        )))
        .arg(rec)
        .arg(tags.concat().as_slice()),
    )
    .await
}

/// Moves up to `limit` pending tag lists, oldest first, into `search_tags`, in one
/// transaction: a page of the tag b-tree is written once for all of them, where filing each
/// write's tags there at its commit wrote it once per write. Concurrent mergers take different
/// lists. How many lists were merged.
pub(crate) async fn merge_pending<D: Dialect>(
    store: &SqlStore<D>,
    limit: u32,
) -> Result<u64, StoreError> {
    let mut tx = D::begin_write(&store.pool).await.map_err(err)?;
    let pending = format!(
        "SELECT rec, tags FROM record_tags WHERE merged = 0 ORDER BY rec LIMIT $1{}",
        D::SKIP_LOCKED
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(pending))
        .arg(i64::from(limit))
        .fetch_all(on::<D>(&mut tx))
        .await
        .map_err(err)?;
    let mut recs = Vec::with_capacity(rows.len());
    for row in &rows {
        let (rec, tags) = <D::Db as Decodes<(i64, Vec<u8>)>>::decode(row).map_err(err)?;
        insert_tag_rows::<D>(&mut tx, rec, &unpacked(rec, &tags)?).await?;
        recs.push(rec);
    }
    for chunk in recs.chunks(TAGS_PER_INSERT) {
        let list: Vec<String> = (1..=chunk.len()).map(|n| format!("${n}")).collect();
        let sql = format!(
            "UPDATE record_tags SET merged = 1 WHERE rec IN ({})",
            list.join(", ")
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for rec in chunk {
            q = q.arg(*rec);
        }
        execute::<D>(&mut tx, q).await?;
    }
    tx.commit().await.map_err(err)?;
    if !recs.is_empty() {
        let mut c = store.pool.acquire().await.map_err(err)?;
        D::after_bulk_write(&mut c).await.map_err(err)?;
    }
    Ok(recs.len() as u64)
}

/// Inserts a row of `search_tags` for each of `tags` of record `rec` (a repeat is harmless).
async fn insert_tag_rows<D: Dialect>(
    tx: &mut <D::Db as Database>::Connection,
    rec: i64,
    tags: &[&[u8]],
) -> Result<(), StoreError> {
    per_tag_chunk::<D>(
        tx,
        [
            "INSERT INTO search_tags (tag, rec) VALUES ",
            " ON CONFLICT DO NOTHING",
        ],
        |n| format!("(${n}, $1)"),
        rec,
        tags,
    )
    .await
}

/// A tag list's merged flag and packed tags.
struct Listed(i64, Vec<u8>);

impl TryFrom<(i64, Vec<u8>)> for Listed {
    type Error = StoreError;
    fn try_from((merged, tags): (i64, Vec<u8>)) -> Result<Self, StoreError> {
        Ok(Self(merged, tags))
    }
}

/// The tags of a packed list (16 bytes each).
fn unpacked(rec: i64, listed: &[u8]) -> Result<Vec<&[u8]>, StoreError> {
    if !listed.len().is_multiple_of(TAG_BYTES) {
        return Err(StoreError::Corrupt(format!(
            "the tag list of record number {rec} is {} bytes, not a multiple of {TAG_BYTES}",
            listed.len()
        )));
    }
    Ok(listed.chunks(TAG_BYTES).collect())
}

/// Runs `around[0]`, one `item(n)` per tag (`$n` its placeholder, joined by `, `) and
/// `around[1]` for each chunk of `tags`, with `$1` the record's number: a few statements per
/// record, well under both backends' bound-parameter limits.
async fn per_tag_chunk<D: Dialect>(
    tx: &mut <D::Db as Database>::Connection,
    around: [&str; 2],
    item: impl Fn(usize) -> String,
    rec: i64,
    tags: &[&[u8]],
) -> Result<(), StoreError> {
    for chunk in tags.chunks(TAGS_PER_INSERT) {
        let items: Vec<String> = (0..chunk.len()).map(|i| item(i + 2)).collect();
        let sql = format!("{}{}{}", around[0], items.join(", "), around[1]);
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).arg(rec);
        for t in chunk {
            q = q.arg(*t);
        }
        execute::<D>(tx, q).await?;
    }
    Ok(())
}

/// Bytes of one tag in a packed list.
const TAG_BYTES: usize = std::mem::size_of::<IndexTag>();

/// A value bound to a search statement.
enum Arg<'a> {
    Text(&'a str),
    Bytes(&'a [u8]),
    Int(i64),
    Bool(bool),
}

/// A statement under construction: SQL text and its arguments, numbered as pushed.
#[derive(Default)]
pub(crate) struct Statement<'a> {
    sql: String,
    args: Vec<Arg<'a>>,
}

impl<'a> Statement<'a> {
    /// `$n` for `a`, bound next.
    fn bind(&mut self, a: Arg<'a>) -> String {
        self.args.push(a);
        format!("${}", self.args.len())
    }

    /// A placeholder for each of `tags`, bound next.
    fn tags(&mut self, tags: &'a [IndexTag]) -> Vec<String> {
        tags.iter()
            .map(|t| self.bind(Arg::Bytes(t.as_slice())))
            .collect()
    }
}

fn statement<D: Dialect>(q: &IndexQuery) -> Statement<'_> {
    let mut s = Statement::default();
    let rt = s.bind(Arg::Text(&q.resource_type));
    let deleted = s.bind(Arg::Bool(false));
    let mut sql = format!(
        "SELECT v.* \
         FROM record_heads h JOIN record_versions v \
         ON v.resource_type = h.resource_type AND v.id = h.id AND v.version = h.version \
         WHERE h.resource_type = {rt} AND h.deleted = {deleted}"
    );
    if let Some(owner) = &q.owner {
        sql.push_str(&format!(" AND h.owner = {}", s.bind(Arg::Text(owner))));
    }
    if let Some(ids) = &q.ids {
        if ids.is_empty() {
            sql.push_str(" AND 1 = 0");
        } else {
            let list: Vec<String> = ids.iter().map(|i| s.bind(Arg::Text(i))).collect();
            sql.push_str(&format!(" AND h.id IN ({})", list.join(", ")));
        }
    }
    for (tags, negate) in q
        .all_of
        .iter()
        .map(|t| (t, false))
        .chain(q.none_of.iter().map(|t| (t, true)))
    {
        if tags.is_empty() {
            // "Holds one of nothing" matches nothing; "holds none of nothing" everything.
            if !negate {
                sql.push_str(" AND 1 = 0");
            }
            continue;
        }
        // Merged tags by their rows; pending lists (written since the last merge, a bounded
        // few) by scanning them. A tag found across two neighbours of a list would take 16
        // bytes of HMAC output coinciding with it: as likely as guessing the key.
        let tags = s.tags(tags);
        let scan: Vec<String> = tags
            .iter()
            .map(|t| D::contains_bytes("p.tags", t))
            .collect();
        sql.push_str(&format!(
            " AND h.rec {}IN (SELECT t.rec FROM search_tags t WHERE t.tag IN ({}) \
             UNION ALL SELECT p.rec FROM record_tags p WHERE p.merged = 0 AND ({}))",
            if negate { "NOT " } else { "" },
            tags.join(", "),
            scan.join(" OR ")
        ));
    }
    let (cmp, dir) = if q.order.descending {
        ("<", "DESC")
    } else {
        (">", "ASC")
    };
    if let Some(after) = &q.order.after {
        let id = s.bind(Arg::Text(&after.id));
        if q.order.by_id {
            sql.push_str(&format!(" AND h.id {cmp} {id}"));
        } else {
            let at = s.bind(Arg::Text(&after.last_updated));
            sql.push_str(&format!(
                " AND (v.last_updated {cmp} {at} OR (v.last_updated = {at} AND h.id {cmp} {id}))"
            ));
        }
    }
    if q.order.by_id {
        sql.push_str(&format!(" ORDER BY h.id {dir}"));
    } else {
        sql.push_str(&format!(" ORDER BY v.last_updated {dir}, h.id {dir}"));
    }
    let limit = s.bind(Arg::Int(i64::from(q.limit)));
    sql.push_str(&format!(" LIMIT {limit}"));
    s.sql = sql;
    s
}

fn compartment_statement(q: &CompartmentQuery) -> Statement<'_> {
    let mut s = Statement::default();
    let deleted = s.bind(Arg::Bool(false));
    let mut sql = format!(
        "SELECT v.* FROM record_heads h JOIN record_versions v \
         ON v.resource_type = h.resource_type AND v.id = h.id AND v.version = h.version \
         WHERE h.deleted = {deleted}"
    );
    if let Some(owner) = &q.owner {
        sql.push_str(&format!(" AND h.owner = {}", s.bind(Arg::Text(owner))));
    }
    if let Some(types) = &q.types {
        if types.is_empty() {
            sql.push_str(" AND 1 = 0");
        } else {
            let list: Vec<String> = types.iter().map(|t| s.bind(Arg::Text(t))).collect();
            sql.push_str(&format!(" AND h.resource_type IN ({})", list.join(", ")));
        }
    }
    if let Some(since) = &q.since {
        sql.push_str(&format!(
            " AND v.last_updated >= {}",
            s.bind(Arg::Text(since))
        ));
    }
    if let Some((rt, id)) = &q.after {
        let (rt, id) = (s.bind(Arg::Text(rt)), s.bind(Arg::Text(id)));
        sql.push_str(&format!(" AND (h.resource_type, h.id) > ({rt}, {id})"));
    }
    let limit = s.bind(Arg::Int(i64::from(q.limit)));
    sql.push_str(&format!(" ORDER BY h.resource_type, h.id LIMIT {limit}"));
    s.sql = sql;
    s
}

fn history_statement(q: &HistoryQuery) -> Statement<'_> {
    let mut s = Statement::default();
    let mut sql = String::from("SELECT v.* FROM record_versions v WHERE 1 = 1");
    if let Some(rt) = &q.resource_type {
        sql.push_str(&format!(" AND v.resource_type = {}", s.bind(Arg::Text(rt))));
    }
    if let Some(id) = &q.id {
        sql.push_str(&format!(" AND v.id = {}", s.bind(Arg::Text(id))));
    }
    if let Some(owner) = &q.owner {
        sql.push_str(&format!(" AND v.owner = {}", s.bind(Arg::Text(owner))));
    }
    if let Some(since) = &q.since {
        sql.push_str(&format!(
            " AND v.last_updated >= {}",
            s.bind(Arg::Text(since))
        ));
    }
    if let Some(at) = &q.at {
        // Current at `at`: written by then, and not yet replaced by a later version.
        let at = s.bind(Arg::Text(at));
        sql.push_str(&format!(
            " AND v.last_updated <= {at} AND NOT EXISTS (SELECT 1 FROM record_versions w \
             WHERE w.resource_type = v.resource_type AND w.id = v.id AND w.version > v.version \
             AND w.last_updated <= {at})"
        ));
    }
    if let Some(k) = &q.after {
        let (lu, rt, id, ver) = (
            s.bind(Arg::Text(&k.last_updated)),
            s.bind(Arg::Text(&k.resource_type)),
            s.bind(Arg::Text(&k.id)),
            s.bind(Arg::Int(stored(k.version))),
        );
        sql.push_str(&format!(
            " AND (v.last_updated, v.resource_type, v.id, v.version) < ({lu}, {rt}, {id}, {ver})"
        ));
    }
    let limit = s.bind(Arg::Int(i64::from(q.limit)));
    sql.push_str(&format!(
        " ORDER BY v.last_updated DESC, v.resource_type DESC, v.id DESC, v.version DESC LIMIT {limit}"
    ));
    s.sql = sql;
    s
}

/// The versions `s` selects, on `c` (a pooled connection or the caller's transaction).
async fn fetch<D: Dialect>(
    c: &mut <D::Db as Database>::Connection,
    s: Statement<'_>,
) -> Result<Vec<VersionRow>, StoreError> {
    let mut q = sqlx::query(sqlx::AssertSqlSafe(s.sql.as_str()));
    for a in &s.args {
        q = match a {
            Arg::Text(t) => q.arg(*t),
            Arg::Bytes(b) => q.arg(*b),
            Arg::Int(i) => q.arg(*i),
            Arg::Bool(b) => q.arg(*b),
        };
    }
    let found = q.fetch_all(on::<D>(c)).await.map_err(err)?;
    found
        .iter()
        .map(|r| {
            <D::Db as Decodes<rows::Version>>::decode(r)
                .map_err(err)?
                .try_into()
        })
        .collect()
}

/// Fails with [`StoreError::Matched`] if a current record matches a conditional create's
/// criteria, inside the caller's write transaction. Writers with the same criteria are
/// serialised first (SQLite's write lock; a PostgreSQL advisory lock keyed by the criteria),
/// so of racing creates exactly one finds nothing.
pub(crate) async fn require_no_match<D: Dialect>(
    tx: &mut <D::Db as Database>::Connection,
    criteria: &IndexQuery,
) -> Result<(), StoreError> {
    D::lock(tx, criteria_lock(criteria)).await.map_err(err)?;
    let mut one = criteria.clone();
    one.limit = 1;
    one.order = Default::default();
    if fetch::<D>(tx, statement::<D>(&one)).await?.is_empty() {
        Ok(())
    } else {
        Err(StoreError::Matched(format!(
            "a conditional create of {}",
            criteria.resource_type
        )))
    }
}

/// A lock key for criteria: FNV-1a over the type and the tag sets (stable across processes,
/// unlike `std`'s hasher). Different criteria may share a key; that only serialises them.
fn criteria_lock(c: &IndexQuery) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    eat(c.resource_type.as_bytes());
    for set in c.all_of.iter().chain(&c.none_of) {
        eat(b"|");
        for t in set {
            eat(t);
        }
    }
    for id in c.ids.iter().flatten() {
        eat(id.as_bytes());
    }
    h as i64
}

#[async_trait::async_trait]
impl<D: Dialect> SearchIndex for SqlStore<D> {
    async fn search(&self, query: &IndexQuery) -> Result<Vec<VersionRow>, StoreError> {
        let mut c = self.pool.acquire().await.map_err(err)?;
        fetch::<D>(&mut c, statement::<D>(query)).await
    }

    async fn compartment(&self, query: &CompartmentQuery) -> Result<Vec<VersionRow>, StoreError> {
        let mut c = self.pool.acquire().await.map_err(err)?;
        fetch::<D>(&mut c, compartment_statement(query)).await
    }

    async fn history(&self, query: &HistoryQuery) -> Result<Vec<VersionRow>, StoreError> {
        let mut c = self.pool.acquire().await.map_err(err)?;
        fetch::<D>(&mut c, history_statement(query)).await
    }

    async fn retag(
        &self,
        resource_type: &str,
        id: &str,
        version: u64,
        tags: &[IndexTag],
    ) -> Result<bool, StoreError> {
        let mut tx = D::begin_write(&self.pool).await.map_err(err)?;
        let current = format!(
            "SELECT version FROM record_heads WHERE resource_type = $1 AND id = $2 AND deleted = $3{}",
            D::FOR_UPDATE
        );
        let found: Option<Scalar<i64>> = optional::<D, (i64,), _>(
            &mut tx,
            sqlx::query(sqlx::AssertSqlSafe(current.as_str()))
                .arg(resource_type)
                .arg(id)
                .arg(false),
        )
        .await?;
        if found.map(|Scalar(v)| v) != Some(stored(version)) {
            return Ok(false);
        }
        replace_tags::<D>(&mut tx, resource_type, id, tags).await?;
        tx.commit().await.map_err(err)?;
        Ok(true)
    }

    async fn merge_pending(&self, limit: u32) -> Result<u64, StoreError> {
        merge_pending(self, limit).await
    }
}
