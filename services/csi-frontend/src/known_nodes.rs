//! "Known nodes" for ControllerPublishVolume (docs/csi.md §7): publishing to a
//! node that does not exist is NOT_FOUND. Local mode knows the node ids served
//! by the node role (`--known-node`); Kubernetes mode asks whether a CSINode
//! for the node lists this driver (a separate implementation of the trait).

use std::collections::BTreeSet;

use futures::future::BoxFuture;
use rds_bus::NodeId;

use crate::deadline::CallCtx;
use crate::error::FrontendError;

pub trait KnownNodes: Send + Sync + 'static {
    /// Whether `node` runs our node plugin. Errors (e.g. API server down) are
    /// returned, never read as "unknown".
    fn is_known<'a>(
        &'a self,
        ctx: &'a CallCtx,
        node: &'a NodeId,
    ) -> BoxFuture<'a, Result<bool, FrontendError>>;

    /// For logs and `--check-config`.
    fn describe(&self) -> String;
}

/// The fixed set of local mode.
#[derive(Debug, Clone, Default)]
pub struct LocalNodes {
    nodes: BTreeSet<NodeId>,
}

impl LocalNodes {
    pub fn new(nodes: impl IntoIterator<Item = NodeId>) -> Self {
        LocalNodes {
            nodes: nodes.into_iter().collect(),
        }
    }
}

impl KnownNodes for LocalNodes {
    fn is_known<'a>(
        &'a self,
        _ctx: &'a CallCtx,
        node: &'a NodeId,
    ) -> BoxFuture<'a, Result<bool, FrontendError>> {
        Box::pin(async move { Ok(self.nodes.contains(node)) })
    }

    fn describe(&self) -> String {
        let names: Vec<&str> = self.nodes.iter().map(NodeId::as_str).collect();
        format!("local: [{}]", names.join(", "))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn local_nodes_are_exactly_the_configured_ones() {
        let n = LocalNodes::new([NodeId::parse("n1").unwrap()]);
        let ctx = CallCtx::unbounded();
        assert!(
            n.is_known(&ctx, &NodeId::parse("n1").unwrap())
                .await
                .unwrap()
        );
        assert!(
            !n.is_known(&ctx, &NodeId::parse("n2").unwrap())
                .await
                .unwrap()
        );
        assert_eq!(n.describe(), "local: [n1]");
    }
}
