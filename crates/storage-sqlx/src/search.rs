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
/// old ones (as its head row lists them) are deleted, the new ones filed and listed.
pub(crate) async fn replace_tags<D: Dialect>(
    tx: &mut <D::Db as Database>::Connection,
    resource_type: &str,
    id: &str,
    tags: &[IndexTag],
) -> Result<(), StoreError> {
    delete_tags::<D>(tx, resource_type, id).await?;
    insert_tags::<D>(tx, resource_type, id, tags).await?;
    execute::<D>(
        tx,
        sqlx::query("UPDATE record_heads SET tags = $3 WHERE resource_type = $1 AND id = $2")
            .arg(resource_type)
            .arg(id)
            .arg(packed(tags).as_slice()),
    )
    .await
}

/// `tags` as the head row keeps them: concatenated.
pub(crate) fn packed(tags: &[IndexTag]) -> Vec<u8> {
    tags.concat()
}

/// Deletes the tag rows of `resource_type/id` that its head row lists (its current version's),
/// by their primary key; the head's list itself is left for the caller to replace.
pub(crate) async fn delete_tags<D: Dialect>(
    tx: &mut <D::Db as Database>::Connection,
    resource_type: &str,
    id: &str,
) -> Result<(), StoreError> {
    // A head written before tags were listed has none (0011 filled in every existing one).
    let listed: Option<Scalar<Vec<u8>>> = optional::<D, (Vec<u8>,), _>(
        tx,
        sqlx::query(
            "SELECT COALESCE(tags, $3) FROM record_heads WHERE resource_type = $1 AND id = $2",
        )
        .arg(resource_type)
        .arg(id)
        .arg(&[][..] as &[u8]),
    )
    .await?;
    let Some(Scalar(listed)) = listed else {
        return Ok(());
    };
    if listed.len() % TAG_BYTES != 0 {
        return Err(StoreError::Corrupt(format!(
            "the tag list of {resource_type}/{id} is {} bytes, not a multiple of {TAG_BYTES}",
            listed.len()
        )));
    }
    let tags: Vec<&[u8]> = listed.chunks(TAG_BYTES).collect();
    per_tag_chunk::<D>(
        tx,
        [
            "DELETE FROM search_tags WHERE resource_type = $1 AND id = $2 AND tag IN (",
            ")",
        ],
        |n| format!("${n}"),
        resource_type,
        id,
        &tags,
    )
    .await
}

/// Runs `around[0]`, one `item(n)` per tag (`$n` its placeholder, joined by `, `) and
/// `around[1]` for each chunk of `tags`, with `$1` the resource type and `$2` the id: a few
/// statements per record, well under both backends' bound-parameter limits.
async fn per_tag_chunk<D: Dialect>(
    tx: &mut <D::Db as Database>::Connection,
    around: [&str; 2],
    item: impl Fn(usize) -> String,
    resource_type: &str,
    id: &str,
    tags: &[&[u8]],
) -> Result<(), StoreError> {
    for chunk in tags.chunks(TAGS_PER_INSERT) {
        let items: Vec<String> = (0..chunk.len()).map(|i| item(i + 3)).collect();
        let sql = format!("{}{}{}", around[0], items.join(", "), around[1]);
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
            .arg(resource_type)
            .arg(id);
        for t in chunk {
            q = q.arg(*t);
        }
        execute::<D>(tx, q).await?;
    }
    Ok(())
}

/// Bytes of one tag in a head row's list.
const TAG_BYTES: usize = std::mem::size_of::<IndexTag>();

/// Files `tags` for `resource_type/id`, inside the caller's transaction.
pub(crate) async fn insert_tags<D: Dialect>(
    tx: &mut <D::Db as Database>::Connection,
    resource_type: &str,
    id: &str,
    tags: &[IndexTag],
) -> Result<(), StoreError> {
    let tags: Vec<&[u8]> = tags.iter().map(|t| t.as_slice()).collect();
    // Tags are sorted and unique per version; a repeat would be harmless.
    per_tag_chunk::<D>(
        tx,
        [
            "INSERT INTO search_tags (tag, resource_type, id) VALUES ",
            " ON CONFLICT DO NOTHING",
        ],
        |n| format!("(${n}, $1, $2)"),
        resource_type,
        id,
        &tags,
    )
    .await
}

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

    fn list(&mut self, tags: &'a [IndexTag]) -> String {
        tags.iter()
            .map(|t| self.bind(Arg::Bytes(t.as_slice())))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn statement(q: &IndexQuery) -> Statement<'_> {
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
        let list = s.list(tags);
        sql.push_str(&format!(
            " AND h.id {}IN (SELECT t.id FROM search_tags t WHERE t.resource_type = {rt} AND t.tag IN ({list}))",
            if negate { "NOT " } else { "" }
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
    if fetch::<D>(tx, statement(&one)).await?.is_empty() {
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
        fetch::<D>(&mut c, statement(query)).await
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
}
