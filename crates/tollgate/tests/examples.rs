//! Every config under examples/ parses and builds (secrets from a fake env).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[test]
fn every_example_config_is_valid() {
    // SAFETY-free: this test binary is the only reader of this variable.
    unsafe { std::env::set_var("OPENAI_API_KEY", "sk-test-not-real") };
    unsafe { std::env::set_var("TOLLGATE_PG_PASSWORD", "not-real") };
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let cfg = tollgate::config::load_file(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        tollgate::snapshot::Snapshot::build(cfg, None)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        seen += 1;
    }
    assert!(seen >= 3, "expected the example configs, found {seen}");
}
