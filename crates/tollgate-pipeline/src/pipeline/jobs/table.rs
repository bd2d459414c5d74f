//! Configured jobs at run time: each a `Job` (workspace, job id, credential,
//! egress-checked HTTP client, default parameters, waiting rules), built
//! once per snapshot. A job whose config did not change is carried over
//! from the previous snapshot, so its connection pool and cached OAuth
//! token survive a reload (file-backed secrets are re-read).
//!
//! Must not: read a named secret (that happens per call, after the grant).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tollgate_config::{JobConfig, Timeouts};
use tollgate_core::error::BuildError;

use crate::pipeline::forward::{http_client, Credential};

/// One configured job.
pub struct Job {
    pub name: String,
    /// The workspace URL without a trailing `/`.
    pub(super) workspace: String,
    pub job_id: i64,
    pub(super) credential: Credential,
    pub(super) client: tollgate_net::Client,
    pub(super) job_parameters: BTreeMap<String, String>,
    pub(super) notebook_params: BTreeMap<String, String>,
    pub timeout: Duration,
    pub wait: bool,
    pub(super) poll_interval: Duration,
    pub(super) poll_max_interval: Duration,
    pub(super) timeouts: Timeouts,
    source: JobConfig,
}

impl Job {
    fn build(cfg: &JobConfig, egress: &tollgate_net::Egress) -> Result<Self, BuildError> {
        Ok(Self {
            name: cfg.name.clone(),
            workspace: cfg.workspace.trim_end_matches('/').to_string(),
            job_id: cfg.job_id,
            credential: Credential::for_connection(
                &cfg.name,
                cfg.effective_credential().as_ref(),
                &cfg.timeouts,
                egress,
            )?,
            client: http_client(cfg.timeouts.connect, egress)?,
            job_parameters: cfg.job_parameters.clone(),
            notebook_params: cfg.notebook_params.clone(),
            timeout: cfg.timeout,
            wait: cfg.wait,
            poll_interval: cfg.poll_interval,
            poll_max_interval: cfg.poll_max_interval,
            timeouts: cfg.timeouts.clone(),
            source: cfg.clone(),
        })
    }
}

/// Every configured job by name.
#[derive(Default)]
pub struct Table {
    jobs: HashMap<String, Arc<Job>>,
}

impl Table {
    pub fn build(
        jobs: &[JobConfig],
        previous: Option<&Table>,
        egress: &tollgate_net::Egress,
    ) -> Result<Self, BuildError> {
        let mut table = Table::default();
        for cfg in jobs {
            let kept = previous
                .and_then(|t| t.jobs.get(&cfg.name))
                .filter(|j| j.source == *cfg)
                .cloned();
            let job = match kept {
                Some(j) => {
                    j.credential.reload();
                    j
                }
                None => Arc::new(Job::build(cfg, egress)?),
            };
            table.jobs.insert(cfg.name.clone(), job);
        }
        Ok(table)
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Job>> {
        self.jobs.get(name)
    }
}
