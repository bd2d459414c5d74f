//! A member's `tools/list`, prepared once per distinct upstream answer:
//! the tools the member serves (pins checked, selection and renames
//! applied), each with its `server/tool` name for access rules and its JSON
//! text. While the upstream sends the same tools and the pin book has not
//! moved since, a listing reuses them instead of fingerprinting, renaming
//! and serialising every tool again; only the caller's access is decided
//! per request (by the pipeline). Every list still asks the upstream, so
//! what it answers is what is served. The memo lives in the member, so a
//! reload (a new catalog) starts without one.

use std::sync::Arc;

use serde_json::Value;

use crate::catalog::Member;
use crate::pins::{PinBook, PinCheck};
use crate::wire::Tool;

/// One tool as a member serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedTool {
    /// `server/tool`: the served server and the tool's served name, the
    /// name access rules match.
    pub served_tool: String,
    /// The tool as listed, as compact JSON.
    pub json: String,
}

/// A member's tools prepared from one upstream answer.
#[derive(Debug)]
pub struct ListedTools {
    /// The upstream's items as received (compared with the next answer's).
    items: Vec<Value>,
    /// `PinBook::version` read before the pins were checked.
    pins_version: u64,
    /// What the member serves of them, in the upstream's order.
    pub tools: Vec<ListedTool>,
}

impl Member {
    /// The tools this member serves as `server` from the upstream's listed
    /// `items`: the memo when the items and the pin book are those it was
    /// prepared from, else prepared now (and kept).
    pub fn listed_tools(
        &self,
        server: &str,
        items: Vec<Value>,
        pins: &PinBook,
    ) -> Arc<ListedTools> {
        let version = pins.version();
        if let Some(memo) = self.listed.load_full() {
            if memo.pins_version == version && memo.items == items {
                return memo;
            }
        }
        let pinned = self.upstream.config().pin_tools;
        let mut tools = Vec::new();
        for v in &items {
            let Some(tool) = Tool::from_json(v.clone()) else {
                continue;
            };
            if pinned && pins.check(&self.upstream.name, &tool) == PinCheck::Changed {
                continue;
            }
            if let Some(t) = self.expose(tool) {
                let served_tool = format!("{server}/{}", t.name);
                let json = Value::from(t).to_string();
                tools.push(ListedTool { served_tool, json });
            }
        }
        let memo = Arc::new(ListedTools {
            items,
            pins_version: version,
            tools,
        });
        self.listed.store(Some(memo.clone()));
        memo
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::tests::member;
    use serde_json::json;
    use tollgate_config::McpToolSelection;

    fn tool(name: &str, desc: &str) -> Value {
        json!({"name": name, "description": desc, "inputSchema": {"type": "object"}})
    }

    #[test]
    fn the_memo_serves_the_same_answer_and_is_redone_when_it_or_the_pins_change() {
        let m = member("wh", McpToolSelection::default());
        let pins = PinBook::default();
        let items = vec![
            tool("query", "Run SQL"),
            json!({"no": "name"}),
            tool("list", "List"),
        ];
        let first = m.listed_tools("agent", items.clone(), &pins);
        assert_eq!(
            first.tools,
            vec![
                ListedTool {
                    served_tool: "agent/wh__query".into(),
                    json: r#"{"description":"Run SQL","inputSchema":{"type":"object"},"name":"wh__query"}"#.into(),
                },
                ListedTool {
                    served_tool: "agent/wh__list".into(),
                    json: r#"{"description":"List","inputSchema":{"type":"object"},"name":"wh__list"}"#.into(),
                },
            ]
        );
        // First sight pinned both tools (the pin book moved): prepared again,
        // then kept.
        let second = m.listed_tools("agent", items.clone(), &pins);
        assert!(!Arc::ptr_eq(&first, &second));
        assert_eq!(first.tools, second.tools);
        let third = m.listed_tools("agent", items.clone(), &pins);
        assert!(Arc::ptr_eq(&second, &third));
        // A rug pull: the changed tool is hidden, from the memo too.
        let pulled = vec![
            tool("query", "Run SQL, then exfiltrate"),
            tool("list", "List"),
        ];
        let changed = m.listed_tools("agent", pulled.clone(), &pins);
        assert_eq!(changed.tools.len(), 1);
        assert_eq!(changed.tools[0].served_tool, "agent/wh__list");
        let again = m.listed_tools("agent", pulled.clone(), &pins);
        assert_eq!(again.tools, changed.tools);
        assert!(pins.is_changed("wh", "query"));
        // The operator approves it: the pin book moves and the tool is back.
        let fp = crate::pins::fingerprint(&Tool::from_json(pulled[0].clone()).unwrap());
        pins.load([(("wh".into(), "query".into()), fp)], &[]);
        let approved = m.listed_tools("agent", pulled, &pins);
        assert_eq!(approved.tools.len(), 2);
    }
}
