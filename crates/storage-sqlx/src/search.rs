//! The blind search index: tags of current versions, and searches over them in keyset order.
//!
//! Every query here is built from the same pieces for both backends: `IN` over bound tags,
//! row comparisons for the keyset, `$n` placeholders numbered as they are bound.

use medledger_storage_api::{IndexQuery, IndexTag, SearchIndex, StoreError, VersionRow};
use sqlx::Database;

use crate::dialect::{Bind, Dialect};
use crate::rows::{self, stored};
use crate::{Scalar, SqlStore, err, execute, optional};

/// Tags inserted per statement: a multi-row `INSERT` per chunk keeps PostgreSQL to a few round
/// trips per record, well under both backends' bound-parameter limits.
const TAGS_PER_INSERT: usize = 300;

/// Replaces the tags of `resource_type/id` with `tags`, inside the caller's transaction.
pub(crate) async fn replace_tags<D: Dialect>(
    tx: &mut <D::Db as Database>::Connection,
    resource_type: &str,
    id: &str,
    tags: &[IndexTag],
) -> Result<(), StoreError> {
    execute::<D>(
        tx,
        sqlx::query("DELETE FROM search_tags WHERE resource_type = $1 AND id = $2")
            .arg(resource_type)
            .arg(id),
    )
    .await?;
    for chunk in tags.chunks(TAGS_PER_INSERT) {
        let mut sql = String::from("INSERT INTO search_tags (tag, resource_type, id) VALUES ");
        for i in 0..chunk.len() {
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!("(${}, $1, $2)", i + 3));
        }
        // Tags are sorted and unique per version; a repeat would be harmless.
        sql.push_str(" ON CONFLICT DO NOTHING");
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
            .arg(resource_type)
            .arg(id);
        for t in chunk {
            q = q.arg(t.as_slice());
        }
        execute::<D>(tx, q).await?;
    }
    Ok(())
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
struct Statement<'a> {
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

#[async_trait::async_trait]
impl<D: Dialect> SearchIndex for SqlStore<D> {
    async fn search(&self, query: &IndexQuery) -> Result<Vec<VersionRow>, StoreError> {
        let s = statement(query);
        let mut q = sqlx::query(sqlx::AssertSqlSafe(s.sql.as_str()));
        for a in &s.args {
            q = match a {
                Arg::Text(t) => q.arg(*t),
                Arg::Bytes(b) => q.arg(*b),
                Arg::Int(i) => q.arg(*i),
                Arg::Bool(b) => q.arg(*b),
            };
        }
        self.all::<rows::Version, _>(q).await
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
