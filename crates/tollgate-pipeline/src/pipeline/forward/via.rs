//! An outbound connection lent to a REST API published as an MCP server
//! (`transport: openapi` with `connection:`): the MCP layer's `Connection`
//! over this module's own code, so a tool call goes out with the
//! connection's base URL, client, header rules, method and path
//! allow-lists and credential (`credential.rs`: a named secret revealed
//! per call, and only here), exactly as `/connections/{name}/…` would.
//! The caller's grant is the tool grant the MCP phases checked.

use futures_util::future::BoxFuture;
use http::{HeaderMap, Method};
use tollgate_core::secret::SecretSource;
use tollgate_mcp::wire::{code, RpcError};
use tollgate_mcp::UpstreamError;

use super::Upstream;

pub struct Via<'a> {
    up: &'a Upstream,
    secrets: &'a dyn SecretSource,
}

impl<'a> Via<'a> {
    pub fn new(up: &'a Upstream, secrets: &'a dyn SecretSource) -> Self {
        Self { up, secrets }
    }

    fn refused(&self, why: String) -> UpstreamError {
        UpstreamError::Rpc {
            server: self.up.name.clone(),
            error: RpcError::new(code::FORBIDDEN, why),
        }
    }
}

impl tollgate_mcp::upstream::Connection for Via<'_> {
    fn base_url(&self) -> &str {
        self.up.base_url()
    }

    fn client(&self) -> &tollgate_net::Client {
        &self.up.client
    }

    fn headers<'b>(
        &'b self,
        method: &'b Method,
        path: &'b str,
        caller: &'b HeaderMap,
    ) -> BoxFuture<'b, Result<HeaderMap, UpstreamError>> {
        Box::pin(async move {
            let name = &self.up.name;
            if !self.up.allows_method(method) {
                return Err(self.refused(format!("connection {name} does not allow {method}")));
            }
            if self.up.checked_path(path.to_string()).is_none() {
                return Err(self.refused(format!("connection {name} does not allow this path")));
            }
            // The connection's own header rules; none of the MCP caller's
            // headers go to the API.
            let mut headers = self.up.request_headers(&HeaderMap::new());
            let credential = self
                .up
                .credential
                .header(name, self.secrets, caller)
                .await
                .map_err(|e| UpstreamError::Credentials {
                    server: name.clone(),
                    detail: e.message().to_string(),
                })?;
            if let Some((n, v)) = credential {
                headers.insert(n, v);
            }
            Ok(headers)
        })
    }
}
