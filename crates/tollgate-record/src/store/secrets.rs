//! Named secrets as stored: AES-256-GCM ciphertexts only (sealed and
//! opened by `crate::vault`), with the id of the key each was sealed
//! under and that key's check value. The store never sees a plaintext.

use sqlx::Row;

use super::{Store, StoreError};

/// One secret as stored. Nothing here is secret: the ciphertext opens only
/// with the key named by `key_id`, and only for this `name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedSecret {
    pub name: String,
    /// The `secrets:` key id it was sealed under.
    pub key_id: String,
    /// That key's check value (`vault::keyring`): tells a wrong key from a
    /// damaged row at start, without decrypting anything.
    pub key_check: String,
    /// The 12-byte AES-GCM nonce.
    pub nonce: Vec<u8>,
    /// The ciphertext with its 16-byte tag appended.
    pub ciphertext: Vec<u8>,
    pub created_ms: i64,
    pub updated_ms: i64,
}

const COLUMNS: &str = "name, key_id, key_check, nonce, ciphertext, created_ms, updated_ms";

impl Store {
    /// Every stored secret, by name.
    pub async fn list_secrets(&self) -> Result<Vec<SealedSecret>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM secrets ORDER BY name"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(SealedSecret {
                    name: r.try_get(0)?,
                    key_id: r.try_get(1)?,
                    key_check: r.try_get(2)?,
                    nonce: r.try_get(3)?,
                    ciphertext: r.try_get(4)?,
                    created_ms: r.try_get(5)?,
                    updated_ms: r.try_get(6)?,
                })
            })
            .collect()
    }

    /// Writes a secret, replacing one of the same name (its `created_ms`
    /// is kept).
    pub async fn put_secret(&self, s: &SealedSecret) -> Result<(), StoreError> {
        let sql = self.sql(
            "INSERT INTO secrets (name, key_id, key_check, nonce, ciphertext, created_ms, updated_ms)
             VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET
             key_id = excluded.key_id, key_check = excluded.key_check, nonce = excluded.nonce,
             ciphertext = excluded.ciphertext, updated_ms = excluded.updated_ms",
        );
        sqlx::query(&sql)
            .bind(&s.name)
            .bind(&s.key_id)
            .bind(&s.key_check)
            .bind(&s.nonce)
            .bind(&s.ciphertext)
            .bind(s.created_ms)
            .bind(s.updated_ms)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Replaces `old` by `new` (same name) only if the row is still `old`
    /// (same key and nonce): a rotation never overwrites a value written
    /// meanwhile. Returns whether it did.
    pub async fn replace_secret(
        &self,
        old: &SealedSecret,
        new: &SealedSecret,
    ) -> Result<bool, StoreError> {
        let sql = self.sql(
            "UPDATE secrets SET key_id = ?, key_check = ?, nonce = ?, ciphertext = ?, updated_ms = ?
             WHERE name = ? AND key_id = ? AND nonce = ?",
        );
        let done = sqlx::query(&sql)
            .bind(&new.key_id)
            .bind(&new.key_check)
            .bind(&new.nonce)
            .bind(&new.ciphertext)
            .bind(new.updated_ms)
            .bind(&old.name)
            .bind(&old.key_id)
            .bind(&old.nonce)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Deletes a secret; whether there was one.
    pub async fn delete_secret(&self, name: &str) -> Result<bool, StoreError> {
        let sql = self.sql("DELETE FROM secrets WHERE name = ?");
        let done = sqlx::query(&sql).bind(name).execute(&self.pool).await?;
        Ok(done.rows_affected() > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed(name: &str, key: &str, nonce: u8, ms: i64) -> SealedSecret {
        SealedSecret {
            name: name.into(),
            key_id: key.into(),
            key_check: "c".into(),
            nonce: vec![nonce; 12],
            ciphertext: vec![0, 255, 7],
            created_ms: ms,
            updated_ms: ms,
        }
    }

    #[tokio::test]
    async fn put_replace_delete() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&format!("sqlite://{}", dir.path().join("t.db").display()))
            .await
            .unwrap();
        store.put_secret(&sealed("a", "k1", 1, 10)).await.unwrap();
        store.put_secret(&sealed("a", "k1", 2, 20)).await.unwrap();
        let rows = store.list_secrets().await.unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!((rows[0].created_ms, rows[0].updated_ms), (10, 20));
        assert_eq!(rows[0].nonce, vec![2; 12]);
        // A stale rotation (nonce 1 was overwritten) does nothing.
        let stale = sealed("a", "k1", 1, 10);
        assert!(!store
            .replace_secret(&stale, &sealed("a", "k2", 3, 30))
            .await
            .unwrap());
        assert!(store
            .replace_secret(&rows[0], &sealed("a", "k2", 3, 30))
            .await
            .unwrap());
        assert_eq!(store.list_secrets().await.unwrap()[0].key_id, "k2");
        assert!(store.delete_secret("a").await.unwrap());
        assert!(!store.delete_secret("a").await.unwrap());
        assert!(store.list_secrets().await.unwrap().is_empty());
    }
}
