//! The HTTPS mode: a throw-away CA, a server certificate for 127.0.0.1 /
//! localhost / kubernetes.default.svc signed by it, and the files a pod gets
//! in `/var/run/secrets/kubernetes.io/serviceaccount/` (ca.crt, token,
//! namespace), written under a temporary directory.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// Where kube (and client-go) read the service account in a pod, relative
/// to the root the kit lays it out under.
pub const SA_SUBDIR: &str = "var/run/secrets/kubernetes.io/serviceaccount";

/// What the HTTPS mode wrote to disk.
#[derive(Clone, Debug)]
pub struct PodFiles {
    /// The directory standing for `/var/run/secrets/kubernetes.io/serviceaccount/`.
    pub sa_dir: PathBuf,
    pub ca_pem: String,
    /// The CA certificate, DER.
    pub ca_der: Vec<u8>,
    pub token: String,
    pub namespace: String,
}

pub(crate) struct ServerTls {
    pub acceptor: TlsAcceptor,
    pub files: PodFiles,
}

fn err(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

/// Generates the CA and server certificate and writes the pod's files
/// under `root/var/run/secrets/kubernetes.io/serviceaccount/`.
pub(crate) fn make(root: &Path, token: &str, namespace: &str) -> io::Result<ServerTls> {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "rds-testkit fake API CA");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key = KeyPair::generate().map_err(err)?;
    let ca_cert = ca_params.self_signed(&ca_key).map_err(err)?;
    let issuer = Issuer::from_params(&ca_params, &ca_key);

    let mut params = CertificateParams::new(vec![
        "localhost".to_owned(),
        "kubernetes.default.svc".to_owned(),
    ])
    .map_err(err)?;
    params
        .subject_alt_names
        .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    params
        .distinguished_name
        .push(DnType::CommonName, "kube-apiserver");
    let key = KeyPair::generate().map_err(err)?;
    let cert = params.signed_by(&key, &issuer).map_err(err)?;

    let sa_dir = root.join(SA_SUBDIR);
    std::fs::create_dir_all(&sa_dir)?;
    let ca_pem = ca_cert.pem();
    std::fs::write(sa_dir.join("ca.crt"), &ca_pem)?;
    std::fs::write(sa_dir.join("token"), token)?;
    std::fs::write(sa_dir.join("namespace"), namespace)?;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(err)?
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(cert.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .map_err(err)?;
    Ok(ServerTls {
        acceptor: TlsAcceptor::from(Arc::new(config)),
        files: PodFiles {
            sa_dir,
            ca_pem,
            ca_der: ca_cert.der().to_vec(),
            token: token.to_owned(),
            namespace: namespace.to_owned(),
        },
    })
}

/// A TLS listener for `axum::serve`: handshakes run concurrently (one slow
/// client does not hold up the others); failed handshakes are dropped.
pub(crate) struct TlsListener {
    rx: mpsc::Receiver<(TlsStream<tokio::net::TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    pub fn new(tcp: TcpListener, acceptor: TlsAcceptor) -> io::Result<TlsListener> {
        let local = tcp.local_addr()?;
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let Ok((sock, addr)) = tcp.accept().await else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let (acceptor, conn_tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    let hs = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(sock));
                    if let Ok(Ok(tls)) = hs.await {
                        let _ = conn_tx.send((tls, addr)).await;
                    }
                });
                if tx.is_closed() {
                    return;
                }
            }
        });
        Ok(TlsListener { rx, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(conn) => conn,
            // The acceptor task is gone (runtime shutting down): never return.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}
