//! The one Kubernetes client builder (docs/decisions.md §14): the kubeconfig
//! file a flag names, else the usual inference (in-cluster service account,
//! `$KUBECONFIG`, `~/.kube/config`).

use std::path::{Path, PathBuf};

/// Why no client could be built. The text names the file, never its content.
#[derive(Debug, thiserror::Error)]
pub enum KubeClientError {
    #[error("kubeconfig {}: {msg}", path.display())]
    Kubeconfig { path: PathBuf, msg: String },
    #[error("no Kubernetes configuration: {0}")]
    Infer(String),
    #[error("kubernetes client: {0}")]
    Client(String),
}

/// A client from `kubeconfig`, or from the inferred configuration.
pub async fn client(kubeconfig: Option<&Path>) -> Result<kube::Client, KubeClientError> {
    let config = match kubeconfig {
        Some(path) => {
            let bad = |msg: String| KubeClientError::Kubeconfig {
                path: path.to_path_buf(),
                msg,
            };
            let kc = kube::config::Kubeconfig::read_from(path).map_err(|e| bad(e.to_string()))?;
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(|e| bad(e.to_string()))?
        }
        None => kube::Config::infer()
            .await
            .map_err(|e| KubeClientError::Infer(e.to_string()))?,
    };
    kube::Client::try_from(config).map_err(|e| KubeClientError::Client(e.to_string()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn a_missing_kubeconfig_is_named_in_the_error() {
        let Err(err) = client(Some(Path::new("/nonexistent/kubeconfig"))).await else {
            panic!("a missing kubeconfig must not give a client");
        };
        assert!(matches!(err, KubeClientError::Kubeconfig { .. }));
        assert!(err.to_string().contains("/nonexistent/kubeconfig"), "{err}");
    }
}
