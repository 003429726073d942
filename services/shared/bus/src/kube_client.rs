//! The one Kubernetes client builder (docs/decisions.md §14): the kubeconfig
//! file a flag names (optionally one of its contexts), else the usual
//! inference (in-cluster service account, `$KUBECONFIG`, `~/.kube/config`);
//! optionally one deadline for connecting, reading and writing.

use std::path::{Path, PathBuf};
use std::time::Duration;

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

/// What [`client_with`] builds a client from.
#[derive(Clone, Debug, Default)]
pub struct KubeOptions {
    /// The kubeconfig file; `None` infers the configuration.
    pub kubeconfig: Option<PathBuf>,
    /// A context of that kubeconfig file (default: its current one).
    pub context: Option<String>,
    /// Connect, read and write deadline of every request (`None`: kube's
    /// defaults).
    pub timeout: Option<Duration>,
}

/// A client from `kubeconfig`, or from the inferred configuration.
pub async fn client(kubeconfig: Option<&Path>) -> Result<kube::Client, KubeClientError> {
    client_with(&KubeOptions {
        kubeconfig: kubeconfig.map(Path::to_path_buf),
        ..KubeOptions::default()
    })
    .await
}

/// A client as `opts` say.
pub async fn client_with(opts: &KubeOptions) -> Result<kube::Client, KubeClientError> {
    let mut config = match &opts.kubeconfig {
        Some(path) => {
            let bad = |msg: String| KubeClientError::Kubeconfig {
                path: path.clone(),
                msg,
            };
            let kc = kube::config::Kubeconfig::read_from(path).map_err(|e| bad(e.to_string()))?;
            let pick = kube::config::KubeConfigOptions {
                context: opts.context.clone(),
                ..Default::default()
            };
            kube::Config::from_custom_kubeconfig(kc, &pick)
                .await
                .map_err(|e| bad(e.to_string()))?
        }
        None => kube::Config::infer()
            .await
            .map_err(|e| KubeClientError::Infer(e.to_string()))?,
    };
    if let Some(t) = opts.timeout {
        config.connect_timeout = Some(t);
        config.read_timeout = Some(t);
        config.write_timeout = Some(t);
    }
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

    /// A context the kubeconfig does not have is refused, naming the file.
    #[tokio::test]
    async fn an_unknown_context_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kubeconfig");
        std::fs::write(
            &path,
            "apiVersion: v1\nkind: Config\ncurrent-context: a\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:1\ncontexts:\n- name: a\n  context:\n    cluster: c\n    user: u\nusers:\n- name: u\n  user:\n    token: t\n",
        )
        .unwrap();
        let mut opts = KubeOptions {
            kubeconfig: Some(path.clone()),
            timeout: Some(Duration::from_secs(1)),
            ..KubeOptions::default()
        };
        assert!(
            client_with(&opts).await.is_ok(),
            "the current context builds"
        );
        opts.context = Some("b".into());
        let Err(err) = client_with(&opts).await else {
            panic!("context b does not exist");
        };
        assert!(matches!(err, KubeClientError::Kubeconfig { .. }), "{err}");
    }
}
