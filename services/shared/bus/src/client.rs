//! Connecting to a bus service: a lazily connected channel (services start in
//! any order) with a connect timeout, a default per-call deadline and the
//! trace-context interceptor.

use std::time::Duration;

use hyper_util::rt::TokioIo;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::BusError;
use crate::trace::TraceContextInterceptor;

/// What every generated client is built on: `AgentClient::new(channel)`.
pub type BusChannel = InterceptedService<Channel, TraceContextInterceptor>;

#[derive(Clone, Copy, Debug)]
pub struct ClientOptions {
    /// Deadline for establishing the connection.
    pub connect_timeout: Duration,
    /// Default deadline of each call (a request's own `set_timeout` wins when shorter).
    pub request_timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            connect_timeout: Duration::from_secs(3),
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// `http://host:port`, `host:port`, `tcp://host:port` or `unix:///path`.
pub fn connect(addr: &str, opts: ClientOptions) -> Result<BusChannel, BusError> {
    let channel = if let Some(path) = addr.strip_prefix("unix://") {
        if !path.starts_with('/') {
            return Err(BusError::BadAddress(addr.to_owned()));
        }
        let path = path.to_owned();
        // The URI is ignored by the connector; it only has to parse.
        Endpoint::from_static("http://localhost")
            .connect_timeout(opts.connect_timeout)
            .timeout(opts.request_timeout)
            .connect_with_connector_lazy(tower::service_fn(move |_: Uri| {
                let path = path.clone();
                async move {
                    let stream = tokio::net::UnixStream::connect(path).await?;
                    Ok::<_, std::io::Error>(TokioIo::new(stream))
                }
            }))
    } else {
        let hostport = addr
            .strip_prefix("tcp://")
            .or_else(|| addr.strip_prefix("http://"))
            .unwrap_or(addr);
        if !hostport.contains(':') {
            return Err(BusError::BadAddress(addr.to_owned()));
        }
        Endpoint::from_shared(format!("http://{hostport}"))
            .map_err(|_| BusError::BadAddress(addr.to_owned()))?
            .connect_timeout(opts.connect_timeout)
            .timeout(opts.request_timeout)
            .tcp_nodelay(true)
            .connect_lazy()
    };
    Ok(InterceptedService::new(channel, TraceContextInterceptor))
}
