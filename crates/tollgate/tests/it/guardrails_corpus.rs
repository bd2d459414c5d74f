//! Precision and recall of every detector over a labelled corpus of
//! positives and near-misses: tests/data/guardrails/corpus.jsonl (made by
//! make_corpus.py beside it) and corpus_extra.jsonl (hand-written: a custom
//! regex, a deny list, realistic near-misses such as hashes, UUIDs, dates,
//! ISBNs). Prints the table; holds the floors below.

use std::collections::{BTreeMap, BTreeSet};

use tollgate::guardrails::{Builtin, CustomDetector, DenyList, DetectorSet, DetectorSpec};

/// Floors per category (precision, recall), set at what the detectors
/// achieve on this corpus, rounded down.
const FLOORS: &[(&str, f64, f64)] = &[
    ("email", 1.0, 1.0),
    ("phone", 1.0, 1.0),
    ("credit_card", 1.0, 1.0),
    ("ssn", 1.0, 1.0),
    ("iban", 1.0, 1.0),
    ("ip_address", 1.0, 1.0),
    ("secret", 1.0, 1.0),
    ("custom", 1.0, 1.0),
    ("keyword", 1.0, 1.0),
];

#[test]
fn precision_and_recall_hold_their_floors() {
    let set = DetectorSet::new(&DetectorSpec {
        builtins: Builtin::ALL.to_vec(),
        custom: vec![CustomDetector {
            name: "ticket".into(),
            pattern: r"\bTCK-\d{6}\b".into(),
        }],
        deny_lists: vec![DenyList {
            name: "harm".into(),
            terms: vec![
                "bomb".into(),
                "café".into(),
                "nerve agent".into(),
                "straße".into(),
            ],
            whole_word: true,
        }],
        ..DetectorSpec::default()
    })
    .unwrap();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/guardrails/");
    let corpus = ["corpus.jsonl", "corpus_extra.jsonl"]
        .iter()
        .map(|f| std::fs::read_to_string(format!("{dir}{f}")).unwrap())
        .collect::<Vec<_>>()
        .join("\n");
    // category -> (true positives, false positives, false negatives)
    let mut score: BTreeMap<String, (u32, u32, u32)> = BTreeMap::new();
    let mut misses = Vec::new();
    for line in corpus.lines().filter(|l| !l.trim().is_empty()) {
        let row: serde_json::Value = serde_json::from_str(line).unwrap();
        let text = row["text"].as_str().unwrap();
        let expect: BTreeSet<String> = row["expect"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect();
        let got: BTreeSet<String> = set
            .scan(text)
            .iter()
            .map(|f| f.category.as_str().to_owned())
            .collect();
        for c in expect.union(&got) {
            let e = score.entry(c.clone()).or_default();
            match (expect.contains(c), got.contains(c)) {
                (true, true) => e.0 += 1,
                (false, true) => {
                    e.1 += 1;
                    misses.push(format!("false {c}: {text:?}"));
                }
                (true, false) => {
                    e.2 += 1;
                    misses.push(format!("missed {c}: {text:?}"));
                }
                _ => {}
            }
        }
    }
    println!(
        "{:<12} {:>4} {:>4} {:>4} {:>9} {:>7}",
        "category", "tp", "fp", "fn", "precision", "recall"
    );
    for (c, (tp, fp, fnn)) in &score {
        let p = f64::from(*tp) / f64::from((tp + fp).max(1));
        let r = f64::from(*tp) / f64::from((tp + fnn).max(1));
        println!("{c:<12} {tp:>4} {fp:>4} {fnn:>4} {p:>9.3} {r:>7.3}");
    }
    for m in &misses {
        println!("  {m}");
    }
    for (c, pf, rf) in FLOORS {
        let (tp, fp, fnn) = score.get(*c).copied().unwrap_or_default();
        let p = f64::from(tp) / f64::from((tp + fp).max(1));
        let r = f64::from(tp) / f64::from((tp + fnn).max(1));
        assert!(tp > 0, "{c}: no positives in the corpus");
        assert!(p >= *pf, "{c}: precision {p:.3} below {pf}");
        assert!(r >= *rf, "{c}: recall {r:.3} below {rf}");
    }
}
