//! Kubernetes mode of [`KnownNodes`]: a node is known when its CSINode object
//! lists this driver (node-driver-registrar creates that entry when our node
//! plugin registers with kubelet). One GET per ControllerPublish, bounded by
//! the call's deadline; an API failure is UNAVAILABLE, never "unknown node".

use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::api::storage::v1::CSINode;
use kube::{Api, Client};
use rds_bus::{NodeId, Reason};

use crate::deadline::CallCtx;
use crate::error::{Backend, FrontendError};
use crate::known_nodes::KnownNodes;

pub struct KubeNodes {
    client: Client,
    driver: String,
    timeout: Duration,
}

impl KubeNodes {
    pub fn new(client: Client, driver: impl Into<String>, timeout: Duration) -> Self {
        KubeNodes {
            client,
            driver: driver.into(),
            timeout,
        }
    }

    async fn lookup(&self, ctx: &CallCtx, node: &NodeId) -> Result<bool, FrontendError> {
        let api: Api<CSINode> = Api::all(self.client.clone());
        let limit = ctx.bus_timeout(self.timeout)?;
        let found = tokio::time::timeout(limit, api.get_opt(node.as_str()))
            .await
            .map_err(|_| {
                FrontendError::DeadlineExceeded(format!(
                    "kubernetes GET CSINode {node}: no answer within {limit:?}"
                ))
            })?
            .map_err(|e| {
                FrontendError::bus(
                    Backend::Kubernetes,
                    "GET CSINode",
                    rds_bus::status(Reason::ServiceUnavailable, e.to_string()),
                )
            })?;
        Ok(found.is_some_and(|n| n.spec.drivers.iter().any(|d| d.name == self.driver)))
    }
}

impl KnownNodes for KubeNodes {
    fn is_known<'a>(
        &'a self,
        ctx: &'a CallCtx,
        node: &'a NodeId,
    ) -> BoxFuture<'a, Result<bool, FrontendError>> {
        Box::pin(self.lookup(ctx, node))
    }

    fn describe(&self) -> String {
        format!("kubernetes: CSINode lists driver {}", self.driver)
    }
}
