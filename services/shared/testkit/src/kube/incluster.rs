//! In-cluster configuration against the HTTPS fake.
//!
//! kube's `Config::incluster_env()` reads KUBERNETES_SERVICE_HOST/PORT and
//! the fixed paths `/var/run/secrets/kubernetes.io/serviceaccount/{ca.crt,
//! token,namespace}`. To run that very code path without touching the
//! machine's `/var/run`, [`run_test_in_pod`] re-runs one test of the
//! current test binary in a private mount namespace (`unshare --mount`;
//! as non-root also `--user --map-root-user`) with the service environment
//! set; there the test calls [`enter_pod`], which mounts a tmpfs over
//! `/run` (`/var/run` links to it) and copies the pod's files to the real
//! path. Nothing is visible outside that child process.
//!
//! [`config`] builds the same `kube::Config` from the files where they
//! are, for tests that cannot use a mount namespace.

use std::path::{Path, PathBuf};
use std::process::Output;

use super::{FakeApi, PodFiles};

/// Set in the child: the directory holding the pod's files.
pub const POD_SA_ENV: &str = "RDS_TESTKIT_POD_SA_DIR";
/// Where kube reads the service account in a pod.
pub const SA_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// The in-cluster `kube::Config` kube would build in a pod of this fake,
/// read from the files where the kit wrote them.
pub fn config(api: &FakeApi) -> kube::Config {
    let pod = api
        .pod_files()
        .unwrap_or_else(|| panic!("in-cluster config needs FakeApi::start_tls"));
    let uri = format!("https://{}", api.addr());
    let mut cfg = kube::Config::new(uri.parse().unwrap_or_else(|e| panic!("uri: {e}")));
    cfg.default_namespace = read(&pod.sa_dir.join("namespace"));
    cfg.root_cert = Some(vec![pod.ca_der.clone()]);
    cfg.root_cert_file = Some(pod.sa_dir.join("ca.crt"));
    cfg.auth_info.token_file = Some(pod.sa_dir.join("token").display().to_string());
    cfg
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

/// Runs test `test_name` of the current test binary as a "pod" of `api`
/// (see the module doc) and returns its output. The child must call
/// [`enter_pod`] first.
pub async fn run_test_in_pod(api: &FakeApi, test_name: &str) -> std::io::Result<Output> {
    let pod: &PodFiles = api
        .pod_files()
        .ok_or_else(|| std::io::Error::other("run_test_in_pod needs FakeApi::start_tls"))?;
    let exe = std::env::current_exe()?;
    let mut cmd = tokio::process::Command::new("unshare");
    if !nix::unistd::geteuid().is_root() {
        cmd.args(["--user", "--map-root-user"]);
    }
    cmd.args(["--mount", "--propagation", "private", "--"])
        .arg(exe)
        .args(["--exact", test_name, "--nocapture", "--test-threads=1"])
        .env(POD_SA_ENV, &pod.sa_dir)
        .envs(api.service_env())
        .kill_on_drop(true);
    tokio::time::timeout(std::time::Duration::from_secs(60), cmd.output())
        .await
        .map_err(|_| std::io::Error::other("pod child did not finish within 60 s"))?
}

/// In a child started by [`run_test_in_pod`]: puts the pod's files at
/// [`SA_PATH`] and returns true. Elsewhere: does nothing and returns false
/// (the test is then only a listing entry).
pub fn enter_pod() -> bool {
    let Some(src) = std::env::var_os(POD_SA_ENV).map(PathBuf::from) else {
        return false;
    };
    use nix::mount::{MsFlags, mount};
    mount(
        Some("tmpfs"),
        "/run",
        Some("tmpfs"),
        MsFlags::empty(),
        None::<&str>,
    )
    .unwrap_or_else(|e| panic!("mount tmpfs on /run (private mount namespace): {e}"));
    let dst = Path::new(SA_PATH);
    std::fs::create_dir_all(dst).unwrap_or_else(|e| panic!("mkdir {SA_PATH}: {e}"));
    for f in ["ca.crt", "token", "namespace"] {
        std::fs::copy(src.join(f), dst.join(f)).unwrap_or_else(|e| panic!("copy {f}: {e}"));
    }
    true
}
