//! Every config under examples/ parses and builds (secrets from a fake env).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[test]
fn every_example_config_is_valid() {
    // SAFETY-free: this test binary is the only reader of this variable.
    unsafe { std::env::set_var("OPENAI_API_KEY", "sk-test-not-real") };
    for var in [
        "DATABRICKS_CLIENT_ID",
        "DATABRICKS_CLIENT_SECRET",
        "AZURE_OPENAI_API_KEY",
        "AZURE_TENANT_ID",
        "AZURE_CLIENT_ID",
        "AZURE_CLIENT_SECRET",
    ] {
        // SAFETY: as above, single-threaded test setup.
        unsafe { std::env::set_var(var, "test-not-real") };
    }
    // examples/gemini-bedrock.yaml: a Gemini key and the usual AWS variables.
    unsafe { std::env::set_var("GEMINI_API_KEY", "gemini-test-not-real") };
    unsafe { std::env::set_var("AWS_ACCESS_KEY_ID", "AKIDTESTNOTREAL") };
    unsafe { std::env::set_var("AWS_SECRET_ACCESS_KEY", "aws-test-not-real") };
    unsafe { std::env::set_var("ANTHROPIC_API_KEY", "sk-ant-test-not-real") };
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
