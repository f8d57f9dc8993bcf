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
    let conn = open(db)?;
    let mut stmt = conn.prepare(
        "SELECT DISTINCT parent_id FROM build_cache
         WHERE parent_id IS NOT NULL AND parent_id IN (SELECT id FROM images)",
    )?;
    let ids = stmt
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<HashSet<_>>>()?;
    Ok(ids)
}
