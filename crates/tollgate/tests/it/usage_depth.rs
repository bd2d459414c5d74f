//! The usage API's depth on both stores (SQLite file, PostgreSQL started by
//! the test): grouping by key, by two dimensions, by a custom tag taken from
//! the configured header or the body's `metadata`; filters by tenant, model,
//! key, principal, status and tag; one request's record by its id.

use crate::common;

use std::collections::BTreeMap;

use common::pg::Pg;
use common::*;
use serde_json::{json, Value};
use tollgate::store::Store;

const TAGS: &str = "x-tollgate-tags";

fn config(mock: &Mock, dead: std::net::SocketAddr, db: &str) -> String {
    let base = standard_config(mock, dead, db)
        .replace(
            "ledger:\n  flush_interval: 20ms\n",
            &format!(
                "ledger:\n  flush_interval: 20ms\n  tags:\n    header: {TAGS}\n    metadata: true\n"
            ),
        )
        .replace(
            "    principal: alice\n",
            "    principal: alice\n    tenant: acme\n",
        );
    format!(
        "{base}policy:\n  rules:\n    - name: ops\n      principals: [alice]\n      admin: true\n"
    )
}

/// `(key, key2) → requests` of a report.
fn counts(v: &Value) -> BTreeMap<(String, String), i64> {
    v["rows"]
        .as_array()
        .unwrap_or_else(|| panic!("{v}"))
        .iter()
        .map(|r| {
            (
                (
                    r["key"].as_str().unwrap().to_owned(),
                    r["key2"].as_str().unwrap_or("-").to_owned(),
                ),
                r["requests"].as_i64().unwrap(),
            )
        })
        .collect()
}

fn pairs(list: &[(&str, &str, i64)]) -> BTreeMap<(String, String), i64> {
    list.iter()
        .map(|(a, b, n)| (((*a).to_owned(), (*b).to_owned()), *n))
        .collect()
}

async fn usage_depth(db: Option<String>) {
    let mock = start_mock(Some(UPSTREAM_KEY)).await;
    let dead = dead_addr().await;
    let mut gw =
        start_gateway_with(|sqlite| config(&mock, dead, db.as_deref().unwrap_or(sqlite))).await;
    let send =
        |key: &'static str, model: &str, tags: Option<&str>, meta: Option<Value>, id: &str| {
            let mut body = chat_body(model, "hello there");
            if let Some(m) = meta {
                body["metadata"] = m;
            }
            let mut req = client()
                .post(gw.url("/v1/chat/completions"))
                .bearer_auth(key)
                .header("x-request-id", id)
                .json(&body);
            if let Some(t) = tags {
                req = req.header(TAGS, t);
            }
            req.send()
        };
    // alice (key `full`, tenant acme): 3 tagged by header, 2 by metadata
    // (the header wins over metadata for `team`), 1 refused for its header.
    for i in 0..3 {
        let r = send(
            KEY,
            "chat-local",
            Some("team=ml, env=prod"),
            Some(json!({"team": "x"})),
            &format!("hdr-{i}"),
        )
        .await
        .unwrap();
        assert_eq!(r.status(), 200);
    }
    for i in 0..2 {
        let meta = json!({"team": "search", "n": 1, "bad name": "x"});
        let r = send(KEY, "chat-up", None, Some(meta), &format!("meta-{i}"))
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let r = send(KEY, "chat-local", Some("team"), None, "bad-tags")
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let err: Value = r.json().await.unwrap();
    assert!(
        err["error"]["message"].as_str().unwrap().contains(TAGS),
        "{err}"
    );
    // bob (key `limited`, no tenant): 2 served, 1 refused (403).
    for i in 0..2 {
        let r = send(KEY_LIMITED, "chat-local", None, None, &format!("bob-{i}"))
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let r = send(KEY_LIMITED, "chat-up", None, None, "bob-403")
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    let store = Store::open(db.as_deref().unwrap_or(&gw.db_url))
        .await
        .unwrap();
    wait_records(&store, 9).await;
    let get = |q: String| {
        client()
            .get(gw.admin_url(&format!("/admin/v1/usage?from=0&{q}")))
            .bearer_auth(KEY)
            .send()
    };
    let report = |q: &'static str| {
        let f = get(q.to_owned());
        async move {
            let r = f.await.unwrap();
            assert_eq!(r.status(), 200, "{q}");
            r.json::<Value>().await.unwrap()
        }
    };

    assert_eq!(
        counts(&report("group_by=key").await),
        pairs(&[("full", "-", 6), ("limited", "-", 3)])
    );
    let two = report("group_by=principal,model").await;
    assert_eq!(two["group_by"], "principal,model");
    assert_eq!(
        counts(&two),
        pairs(&[
            ("alice", "chat-local", 4),
            ("alice", "chat-up", 2),
            ("bob", "chat-local", 2),
            ("bob", "chat-up", 1),
        ])
    );
    assert_eq!(
        counts(&report("group_by=tag:team").await),
        pairs(&[("", "-", 4), ("ml", "-", 3), ("search", "-", 2)])
    );
    assert_eq!(
        counts(&report("group_by=tag:team,tag:env").await),
        pairs(&[("", "", 4), ("ml", "prod", 3), ("search", "", 2)])
    );
    // Filters.
    assert_eq!(
        counts(&report("group_by=principal&tenant=acme").await),
        pairs(&[("alice", "-", 6)])
    );
    assert_eq!(
        counts(&report("group_by=principal&model=chat-local").await),
        pairs(&[("alice", "-", 4), ("bob", "-", 2)])
    );
    assert_eq!(
        counts(&report("group_by=model&key=limited").await),
        pairs(&[("chat-local", "-", 2), ("chat-up", "-", 1)])
    );
    assert_eq!(
        counts(&report("group_by=status&status=4xx").await),
        pairs(&[("400", "-", 1), ("403", "-", 1)])
    );
    assert_eq!(
        counts(&report("group_by=key&status=403").await),
        pairs(&[("limited", "-", 1)])
    );
    assert_eq!(
        counts(&report("group_by=principal&status=ok&model=chat-local").await),
        pairs(&[("alice", "-", 3), ("bob", "-", 2)])
    );
    assert_eq!(
        counts(&report("group_by=model&tag=team:ml").await),
        pairs(&[("chat-local", "-", 3)])
    );
    // Two dimensions in CSV: one column each.
    let csv = get("group_by=key,status&format=csv".into())
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(csv.starts_with("key,key2,requests,errors,"), "{csv}");
    assert!(
        csv.lines().any(|l| l.starts_with("limited,403,1,1,")),
        "{csv}"
    );
    for bad in [
        "group_by=a,b",
        "group_by=principal,model,day",
        "group_by=tag:",
        "status=6xx",
        "status=abc",
        "tag=team",
    ] {
        let r = get(bad.into()).await.unwrap();
        assert_eq!(r.status(), 400, "{bad}");
    }

    // One request's record.
    let one = |id: &str, key: Option<&str>| {
        let mut req = client().get(gw.admin_url(&format!("/admin/v1/usage/requests/{id}")));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        req.send()
    };
    let r = one("hdr-1", Some(KEY)).await.unwrap();
    assert_eq!(r.status(), 200);
    let rec: Value = r.json().await.unwrap();
    assert_eq!(rec["request_id"], "hdr-1");
    assert_eq!(rec["principal"], "alice");
    assert_eq!(rec["key_id"], "full");
    assert_eq!(rec["tenant"], "acme");
    assert_eq!(rec["requested_model"], "chat-local");
    assert_eq!(rec["status"], 200);
    assert_eq!(rec["tags"], json!({"env": "prod", "team": "ml"}));
    assert_eq!(rec["groups"], json!(["eng"]));
    assert!(rec["attempts"].is_array(), "{rec}");
    assert!(rec["prompt_tokens"].as_i64().unwrap() > 0);
    let rec: Value = one("meta-0", Some(KEY))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rec["tags"], json!({"team": "search"}));
    let rec: Value = one("bob-403", Some(KEY))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (rec["status"].as_i64(), &rec["tags"]),
        (Some(403), &json!({}))
    );
    assert_eq!(one("no-such-id", Some(KEY)).await.unwrap().status(), 404);
    assert_eq!(one("hdr-1", None).await.unwrap().status(), 401);
    assert_eq!(one("hdr-1", Some(KEY_LIMITED)).await.unwrap().status(), 403);
    gw.stop().await;
}

#[tokio::test]
async fn usage_groups_filters_tags_and_one_record_sqlite() {
    usage_depth(None).await;
}

#[tokio::test]
async fn usage_groups_filters_tags_and_one_record_postgres() {
    let pg = Pg::start();
    usage_depth(Some(pg.url())).await;
}
