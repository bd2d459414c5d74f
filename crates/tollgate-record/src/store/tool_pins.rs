//! MCP tool pins: the approved fingerprint (name, description, input
//! schema) of each upstream tool. The gateway pins a tool the first time
//! it sees it and holds it back when it later changes, until an operator
//! approves the new fingerprint (`tollgate mcp approve`).

use sqlx::Row;

use super::{Store, StoreError};

/// One pinned tool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolPin {
    /// The upstream server (`mcp.servers[].name`).
    pub server: String,
    /// The tool's upstream name.
    pub tool: String,
    pub fingerprint: String,
    pub approved_ms: i64,
    /// `first-seen` (pinned when the gateway first listed it) or who approved it.
    pub approved_by: String,
}

impl Store {
    pub async fn list_tool_pins(&self) -> Result<Vec<ToolPin>, StoreError> {
        let rows = sqlx::query(
            "SELECT server, tool, fingerprint, approved_ms, approved_by FROM mcp_tool_pins ORDER BY server, tool",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ToolPin {
                    server: r.try_get(0)?,
                    tool: r.try_get(1)?,
                    fingerprint: r.try_get(2)?,
                    approved_ms: r.try_get(3)?,
                    approved_by: r.try_get(4)?,
                })
            })
            .collect()
    }

    /// Pins a tool seen for the first time; an existing pin wins (another
    /// replica, or an operator, was first).
    pub async fn pin_tool_if_absent(&self, pin: &ToolPin) -> Result<(), StoreError> {
        self.write_pin(
            "INSERT INTO mcp_tool_pins (server, tool, fingerprint, approved_ms, approved_by)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (server, tool) DO NOTHING",
            pin,
        )
        .await
    }

    /// Approves a tool's fingerprint (replacing any earlier pin).
    pub async fn approve_tool(&self, pin: &ToolPin) -> Result<(), StoreError> {
        self.write_pin(
            "INSERT INTO mcp_tool_pins (server, tool, fingerprint, approved_ms, approved_by)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (server, tool) DO UPDATE SET
             fingerprint = excluded.fingerprint, approved_ms = excluded.approved_ms,
             approved_by = excluded.approved_by",
            pin,
        )
        .await
    }

    async fn write_pin(&self, sql: &str, pin: &ToolPin) -> Result<(), StoreError> {
        sqlx::query(sql)
            .bind(&pin.server)
            .bind(&pin.tool)
            .bind(&pin.fingerprint)
            .bind(pin.approved_ms)
            .bind(&pin.approved_by)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pin(fp: &str, by: &str) -> ToolPin {
        ToolPin {
            server: "wh".into(),
            tool: "query".into(),
            fingerprint: fp.into(),
            approved_ms: 1,
            approved_by: by.into(),
        }
    }

    #[tokio::test]
    async fn first_seen_keeps_the_first_and_approval_replaces_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&format!("sqlite://{}", dir.path().join("t.db").display()))
            .await
            .unwrap();
        store
            .pin_tool_if_absent(&pin("a", "first-seen"))
            .await
            .unwrap();
        store
            .pin_tool_if_absent(&pin("b", "first-seen"))
            .await
            .unwrap();
        assert_eq!(
            store.list_tool_pins().await.unwrap(),
            vec![pin("a", "first-seen")]
        );
        store.approve_tool(&pin("c", "cli")).await.unwrap();
        assert_eq!(store.list_tool_pins().await.unwrap(), vec![pin("c", "cli")]);
    }
}
