//! Every config under examples/ parses and builds (secrets from a fake env).
// `disallowed_methods`: tests read the gateway's own answers whole
// (`reqwest::Response::json` and friends are banned in product code).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)]

/// The fake secrets the examples name (`${VAR}`).
const ENV: &[(&str, &str)] = &[
    ("OPENAI_API_KEY", "sk-test-not-real"),
    ("DATABRICKS_CLIENT_ID", "test-not-real"),
    ("DATABRICKS_CLIENT_SECRET", "test-not-real"),
    ("AZURE_OPENAI_API_KEY", "test-not-real"),
    ("AZURE_TENANT_ID", "test-not-real"),
    ("AZURE_CLIENT_ID", "test-not-real"),
    ("AZURE_CLIENT_SECRET", "test-not-real"),
    // examples/gemini-bedrock.yaml: a Gemini key and the usual AWS variables.
    ("GEMINI_API_KEY", "gemini-test-not-real"),
    ("AWS_ACCESS_KEY_ID", "AKIDTESTNOTREAL"),
    ("AWS_SECRET_ACCESS_KEY", "aws-test-not-real"),
    ("ANTHROPIC_API_KEY", "sk-ant-test-not-real"),
    ("TOLLGATE_PG_PASSWORD", "not-real"),
    // examples/mcp.yaml
    ("TOLLGATE_MCP_SESSION_SECRET", "not-real"),
    ("WAREHOUSE_MCP_TOKEN", "not-real"),
];

/// The environment cannot be set safely in a multi-threaded test process
/// (and the workspace forbids `unsafe`), so the test runs itself again as
/// a child process with the fake secrets in its environment.
#[test]
fn every_example_config_is_valid() {
    if std::env::var_os("TOLLGATE_EXAMPLES_CHILD").is_none() {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "every_example_config_is_valid", "--nocapture"])
            .env("TOLLGATE_EXAMPLES_CHILD", "1")
            .envs(ENV.iter().copied())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "the example configs failed:\n{stdout}\n{stderr}"
        );
        return;
    }
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
