//! Serving a bus service: [`Listener`] binds TCP (port 0 allowed) or a unix
//! socket; [`Bus`] adds the health service and the trace-context layer and
//! serves until the shutdown future resolves, draining in-flight calls.

use std::convert::Infallible;
use std::future::Future;
use std::path::PathBuf;

use tonic::body::Body;
use tonic::server::NamedService;
use tonic::service::Routes;
use tonic_health::server::HealthReporter;
use tower::Service;

use crate::BusError;

/// A bound listener, so callers can learn the real port before serving.
pub enum Listener {
    Tcp(tokio::net::TcpListener),
    Unix(tokio::net::UnixListener, PathBuf),
}

impl Listener {
    /// Binds `host:port`, `tcp://host:port`, `http://host:port` or
    /// `unix:///path` (a stale socket file at the path is replaced).
    pub async fn bind(addr: &str) -> Result<Listener, BusError> {
        let bind_err = |source| BusError::Bind {
            addr: addr.to_owned(),
            source,
        };
        if let Some(path) = addr.strip_prefix("unix://") {
            if path.is_empty() || !path.starts_with('/') {
                return Err(BusError::BadAddress(addr.to_owned()));
            }
            let path = PathBuf::from(path);
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(bind_err)?;
            }
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(bind_err(e)),
            }
            let l = tokio::net::UnixListener::bind(&path).map_err(bind_err)?;
            return Ok(Listener::Unix(l, path));
        }
        let hostport = addr
            .strip_prefix("tcp://")
            .or_else(|| addr.strip_prefix("http://"))
            .unwrap_or(addr);
        if !hostport.contains(':') {
            return Err(BusError::BadAddress(addr.to_owned()));
        }
        let l = tokio::net::TcpListener::bind(hostport)
            .await
            .map_err(bind_err)?;
        Ok(Listener::Tcp(l))
    }

    /// The address a client passes to [`crate::connect`].
    pub fn endpoint(&self) -> String {
        match self {
            Listener::Tcp(l) => match l.local_addr() {
                Ok(a) => format!("http://{a}"),
                Err(_) => String::new(),
            },
            Listener::Unix(_, p) => format!("unix://{}", p.display()),
        }
    }
}

/// Builder of one bus server.
pub struct Bus {
    routes: Routes,
    health: HealthReporter,
}

impl Default for Bus {
    fn default() -> Self {
        Self::new()
    }
}

impl Bus {
    pub fn new() -> Self {
        let (health, health_service) = tonic_health::server::health_reporter();
        Bus {
            routes: Routes::new(health_service),
            health,
        }
    }

    /// Adds a generated tonic service (e.g. `AgentServer::new(svc)`).
    pub fn add_service<S>(mut self, svc: S) -> Self
    where
        S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
            + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        self.routes = self.routes.add_service(svc);
        self
    }

    /// The health reporter, to mark services (not) serving.
    pub fn health(&self) -> HealthReporter {
        self.health.clone()
    }

    /// Serves on `listener` until `shutdown` resolves; in-flight calls drain.
    pub async fn serve(
        self,
        listener: Listener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), BusError> {
        let server = tonic::transport::Server::builder()
            .layer(crate::trace::server_trace_layer())
            .add_routes(self.routes);
        match listener {
            Listener::Tcp(l) => {
                let incoming = tokio_stream::wrappers::TcpListenerStream::new(l);
                server
                    .serve_with_incoming_shutdown(incoming, shutdown)
                    .await?;
            }
            Listener::Unix(l, path) => {
                let incoming = tokio_stream::wrappers::UnixListenerStream::new(l);
                let res = server
                    .serve_with_incoming_shutdown(incoming, shutdown)
                    .await;
                // The socket file is ours: remove it so a restart binds cleanly.
                let _ = std::fs::remove_file(&path);
                res?;
            }
        }
        Ok(())
    }
}
