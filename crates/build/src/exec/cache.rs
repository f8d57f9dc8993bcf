//! The build cache: a step's cache key (see [`crate::plan::step_key`])
//! names the image that step produced. The table lives in the image
//! store's database, its rows tied to the images: removing an image
//! (rmi, prune) drops the cache entries that led to it.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use berth_image::Digest;
use rusqlite::{params, Connection, OptionalExtension};

use super::error::Result;

pub(crate) struct Cache {
    conn: Mutex<Connection>,
}

fn open(db: &Path) -> Result<Connection> {
    let conn = Connection::open(db)?;
    conn.busy_timeout(Duration::from_secs(30))?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS build_cache (
            key TEXT PRIMARY KEY,
            image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
            parent_id TEXT,
            created TEXT NOT NULL
        );
        CREATE INDEX IF NOT EXISTS build_cache_image ON build_cache(image_id);
        CREATE INDEX IF NOT EXISTS build_cache_parent ON build_cache(parent_id);",
    )?;
    Ok(conn)
}

impl Cache {
    /// Opens the cache in the database at `db` (the image store's, which
    /// must exist: its `images` table is what rows point at).
    pub fn open(db: &Path) -> Result<Cache> {
        Ok(Cache {
            conn: Mutex::new(open(db)?),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The image the step with `key` made, if it is still there.
    pub fn get(&self, key: &Digest) -> Result<Option<String>> {
        Ok(self
            .lock()
            .query_row(
                "SELECT image_id FROM build_cache WHERE key = ?1",
                [key.as_str()],
                |r| r.get(0),
            )
            .optional()?)
    }

    pub fn put(&self, key: &Digest, image: &Digest, parent: Option<&Digest>) -> Result<()> {
        self.lock().execute(
            "INSERT INTO build_cache (key, image_id, parent_id, created) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(key) DO UPDATE SET image_id = excluded.image_id,
                parent_id = excluded.parent_id, created = excluded.created",
            params![
                key.as_str(),
                image.as_str(),
                parent.map(Digest::as_str),
                chrono::Utc::now().to_rfc3339()
            ],
        )?;
        Ok(())
    }
}

/// Images a build step started from: docker's "intermediate images",
/// which `images` lists only with `-a`. Empty when nothing was built.
pub fn intermediate_images(db: &Path) -> Result<HashSet<String>> {
    Ok(lineage(db)?.into_values().collect())
}

/// Each image a build step made, by id, and the image that step started
/// from, where both are still there: what `image prune` keeps parents by.
pub fn lineage(db: &Path) -> Result<berth_engine::image_ops::Parents> {
    let conn = open(db)?;
    let mut stmt = conn.prepare(
        "SELECT image_id, parent_id FROM build_cache
         WHERE parent_id IS NOT NULL AND parent_id IN (SELECT id FROM images)",
    )?;
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

/// Every image a build step made or started from that the cache still
/// names, and each one's parent (the image its step started from).
fn cached_images(db: &Path) -> Result<std::collections::HashMap<String, Option<String>>> {
    let conn = open(db)?;
    let mut stmt = conn.prepare(
        "SELECT image_id, parent_id FROM build_cache
         UNION SELECT parent_id, NULL FROM build_cache
         WHERE parent_id IS NOT NULL AND parent_id NOT IN (SELECT image_id FROM build_cache)",
    )?;
    let rows = stmt
        .query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?))
        })?
        .collect::<rusqlite::Result<std::collections::HashMap<_, _>>>()?;
    Ok(rows)
}

/// `builder prune`: berth's build cache is the images its build steps
/// made, so this removes those of them no tag and no container keeps (and
/// `filters` pick). Without `all`, the steps that led to a tagged image
/// stay too, as docker keeps the cache its images still refer to: only
/// the cache of builds whose images are gone goes. The ids of the images
/// removed, and the bytes freed.
pub fn prune(
    engine: &berth_engine::Engine,
    filters: &berth_engine::filters::PruneFilters,
    all: bool,
) -> Result<(Vec<String>, u64)> {
    let cached = cached_images(&engine.paths.db())?;
    let store = engine.store()?;
    let mut kept = HashSet::new();
    if !all {
        for image in store.images()?.iter().filter(|i| !i.tags.is_empty()) {
            let mut at = cached.get(image.id.as_str()).cloned().flatten();
            while let Some(id) = at {
                if !kept.insert(id.clone()) {
                    break;
                }
                at = cached.get(&id).cloned().flatten();
            }
        }
    }
    let (removed, bytes) = berth_engine::image_ops::prune_where(
        engine,
        &store,
        false,
        filters,
        &|i| cached.contains_key(i.id.as_str()) && !kept.contains(i.id.as_str()),
        // What it keeps, it chose above.
        &Default::default(),
    )?;
    let ids = removed
        .into_iter()
        .filter_map(|r| match r {
            berth_image::store::Removed::Deleted(d) => Some(d.to_string()),
            berth_image::store::Removed::Untagged(..) => None,
        })
        .collect();
    Ok((ids, bytes))
}
