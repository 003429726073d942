//! pod-sandbox: starts one container of a rendered pod the way kubelet and
//! the container runtime would, for tests/tests/pod_contract.rs.
//!
//! Run as root inside fresh namespaces made by the caller:
//!
//! ```text
//! [nsenter --net=/proc/<holder>/ns/net --] unshare --mount --propagation private \
//!     [--pid --fork --kill-child] -- pod-sandbox run <spec.json>
//! unshare --net -- pod-sandbox hold [IP...]   # keeps a pod's network namespace
//! ```
//!
//! `run` builds the container's root filesystem on a tmpfs: the host's /usr,
//! /etc and library directories under overlays (standing for the image), the
//! image's binary at its image path, /proc (fresh unless hostPID), the real
//! /dev and /sys, then every declared volume (bind mounts of directories the
//! test prepared) at its mountPath. The tmpfs is remounted read-only when the
//! container says `readOnlyRootFilesystem: true`, so any write outside a
//! declared volume fails with EROFS exactly as in the cluster. Then it
//! chroots, drops to the declared user, group and capabilities with
//! setpriv(1), clears the environment to the declared one and execs.
//!
//! The spec is written by the test (trusted); no shell is involved anywhere.

use std::ffi::OsString;
use std::io::{BufRead, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use nix::mount::{MsFlags, mount};
use serde::Deserialize;

#[derive(Deserialize)]
struct Spec {
    /// An empty directory that becomes the container's root.
    root: PathBuf,
    read_only_root: bool,
    /// (host file, path inside the image)
    image_files: Vec<(PathBuf, PathBuf)>,
    host_pid: bool,
    mounts: Vec<MountSpec>,
    /// The /etc/hosts kubelet manages for the pod (cluster names → addresses).
    hosts_file: Option<PathBuf>,
    /// None: stay root with every capability (privileged).
    user: Option<UserSpec>,
    argv: Vec<String>,
    env: Vec<(String, String)>,
}

#[derive(Deserialize)]
struct MountSpec {
    source: PathBuf,
    target: PathBuf,
    read_only: bool,
}

#[derive(Deserialize)]
struct UserSpec {
    uid: u32,
    gid: u32,
    groups: Vec<u32>,
    /// Capability names to keep in the bounding set (`chown`, ...); empty: none.
    keep_caps: Vec<String>,
    no_new_privs: bool,
}

/// Directories of the host that stand for the image's content.
const IMAGE_DIRS: &[&str] = &[
    "usr", "etc", "lib", "lib64", "lib32", "libx32", "bin", "sbin",
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let res = match args.get(1).map(String::as_str) {
        Some("hold") => hold(&args[2..]),
        Some("run") if args.len() == 3 => run(Path::new(&args[2])),
        _ => Err("usage: pod-sandbox hold [IP...] | pod-sandbox run <spec.json>".into()),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pod-sandbox: {e}");
            ExitCode::from(125)
        }
    }
}

type Res<T> = Result<T, String>;

fn ip(args: &[&str]) -> Res<()> {
    let st = Command::new("ip")
        .args(args)
        .status()
        .map_err(|e| format!("ip {args:?}: {e}"))?;
    if !st.success() {
        return Err(format!("ip {args:?}: {st}"));
    }
    Ok(())
}

/// Keeps a new network namespace alive with loopback up; prints `ready` and
/// waits for its stdin to close.
/// Each extra address (an IP literal, checked) is added to loopback: it
/// stands for a cluster address (a Service, the RDS) the pod connects to.
fn hold(extra: &[String]) -> Res<()> {
    ip(&["link", "set", "lo", "up"])?;
    for a in extra {
        let addr: std::net::IpAddr = a.parse().map_err(|e| format!("address {a:?}: {e}"))?;
        let prefix = if addr.is_ipv4() { 32 } else { 128 };
        ip(&["addr", "add", &format!("{addr}/{prefix}"), "dev", "lo"])?;
    }
    println!("ready");
    std::io::stdout().flush().map_err(|e| e.to_string())?;
    let mut sink = String::new();
    let stdin = std::io::stdin();
    while stdin
        .lock()
        .read_line(&mut sink)
        .map_err(|e| e.to_string())?
        > 0
    {
        sink.clear();
    }
    Ok(())
}

fn bind(src: &Path, dst: &Path, read_only: bool) -> Res<()> {
    mount(
        Some(src),
        dst,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(|e| format!("bind {} on {}: {e}", src.display(), dst.display()))?;
    if read_only {
        remount_ro(dst)?;
    }
    Ok(())
}

fn remount_ro(dst: &Path) -> Res<()> {
    mount(
        None::<&str>,
        dst,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
        None::<&str>,
    )
    .map_err(|e| format!("remount {} read-only: {e}", dst.display()))
}

fn tmpfs(dst: &Path) -> Res<()> {
    mount(
        Some("tmpfs"),
        dst,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=0755"),
    )
    .map_err(|e| format!("tmpfs on {}: {e}", dst.display()))
}

fn inside(root: &Path, p: &Path) -> PathBuf {
    root.join(p.strip_prefix("/").unwrap_or(p))
}

fn mkdirs(p: &Path) -> Res<()> {
    std::fs::create_dir_all(p).map_err(|e| format!("mkdir {}: {e}", p.display()))
}

fn run(spec_path: &Path) -> Res<()> {
    let text = std::fs::read_to_string(spec_path)
        .map_err(|e| format!("reading {}: {e}", spec_path.display()))?;
    let spec: Spec = serde_json::from_str(&text).map_err(|e| format!("spec: {e}"))?;
    let root = &spec.root;
    tmpfs(root)?;
    let image_mounts = mount_image(root)?;
    mount_image_files(root, &spec)?;
    mount_system_dirs(root, &spec)?;
    mount_volumes(root, &spec)?;
    if spec.read_only_root {
        for m in &image_mounts {
            remount_ro(m)?;
        }
        remount_ro(root)?;
    }

    nix::unistd::chroot(root).map_err(|e| format!("chroot: {e}"))?;
    nix::unistd::chdir("/").map_err(|e| format!("chdir: {e}"))?;
    exec_command(&spec)
}

/// The image: each host directory under an overlay whose upper layer is
/// a private tmpfs (the container's writable layer: where the runtime
/// creates mount points), made read-only by the caller when the root is.
/// Symlinks stay symlinks (merged-/usr hosts). Returns the overlay mounts.
fn mount_image(root: &Path) -> Res<Vec<PathBuf>> {
    let layers = root.with_extension("layers");
    mkdirs(&layers)?;
    tmpfs(&layers)?;
    let mut image_mounts = Vec::new();
    for d in IMAGE_DIRS {
        let host = Path::new("/").join(d);
        let Ok(md) = std::fs::symlink_metadata(&host) else {
            continue;
        };
        let dst = root.join(d);
        if md.file_type().is_symlink() {
            let to = std::fs::read_link(&host).map_err(|e| e.to_string())?;
            std::os::unix::fs::symlink(&to, &dst).map_err(|e| e.to_string())?;
        } else if md.is_dir() {
            overlay(&host, &layers.join(d), &dst)?;
            image_mounts.push(dst);
        }
    }
    Ok(image_mounts)
}

/// An overlay of `host` on `dst`, its upper and work dirs under `layer`.
fn overlay(host: &Path, layer: &Path, dst: &Path) -> Res<()> {
    mkdirs(dst)?;
    let (upper, work) = (layer.join("upper"), layer.join("work"));
    mkdirs(&upper)?;
    mkdirs(&work)?;
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        host.display(),
        upper.display(),
        work.display()
    );
    mount(
        Some("overlay"),
        dst,
        Some("overlay"),
        MsFlags::empty(),
        Some(opts.as_str()),
    )
    .map_err(|e| format!("overlay on {}: {e}", dst.display()))
}

/// The image's own files live under /usr/local (a fresh tmpfs, so the
/// host's /usr/local does not leak in).
fn mount_image_files(root: &Path, spec: &Spec) -> Res<()> {
    let local = root.join("usr/local");
    tmpfs(&local)?;
    for (host, in_image) in &spec.image_files {
        let dst = inside(root, in_image);
        if let Some(parent) = dst.parent() {
            mkdirs(parent)?;
        }
        std::fs::write(&dst, b"").map_err(|e| format!("{}: {e}", dst.display()))?;
        bind(host, &dst, true)?;
    }
    remount_ro(&local)
}

/// What every container gets: /proc, /dev, /sys, an empty /tmp and /run
/// directory in the (possibly read-only) root.
fn mount_system_dirs(root: &Path, spec: &Spec) -> Res<()> {
    for d in ["proc", "dev", "sys", "tmp", "run", "var"] {
        mkdirs(&root.join(d))?;
    }
    if spec.host_pid {
        bind(Path::new("/proc"), &root.join("proc"), false)?;
    } else {
        mount(
            Some("proc"),
            &root.join("proc"),
            Some("proc"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            None::<&str>,
        )
        .map_err(|e| format!("mount proc: {e}"))?;
    }
    bind(Path::new("/dev"), &root.join("dev"), false)?;
    bind(Path::new("/sys"), &root.join("sys"), spec.user.is_some())
}

/// Declared volumes, parents before children, then kubelet's hosts file.
fn mount_volumes(root: &Path, spec: &Spec) -> Res<()> {
    let mut mounts: Vec<&MountSpec> = spec.mounts.iter().collect();
    mounts.sort_by_key(|m| m.target.components().count());
    for m in mounts {
        let dst = inside(root, &m.target);
        mkdirs(&dst)?;
        bind(&m.source, &dst, m.read_only)?;
    }
    if let Some(h) = &spec.hosts_file {
        // /etc is the image's (read-only); kubelet bind-mounts its own file.
        bind(h, &root.join("etc/hosts"), true)?;
    }
    Ok(())
}

/// Replaces this process with the container's command (via setpriv when
/// it runs as a user); returns only on failure.
fn exec_command(spec: &Spec) -> Res<()> {
    let Some(program) = spec.argv.first() else {
        return Err("empty argv".into());
    };
    let mut cmd = match &spec.user {
        None => {
            let mut c = Command::new(program);
            c.args(&spec.argv[1..]);
            c
        }
        Some(u) => setpriv(u, &spec.argv),
    };
    cmd.env_clear();
    for (k, v) in &spec.env {
        cmd.env(k, v);
    }
    let err = cmd.exec();
    let argv: Vec<OsString> = spec.argv.iter().map(OsString::from).collect();
    Err(format!("exec {argv:?}: {err}"))
}

/// `setpriv` dropping to the user's ids, groups and kept capabilities.
fn setpriv(u: &UserSpec, argv: &[String]) -> Command {
    let mut c = Command::new("/usr/bin/setpriv");
    let groups = if u.groups.is_empty() {
        "--clear-groups".to_owned()
    } else {
        let g: Vec<String> = u.groups.iter().map(u32::to_string).collect();
        format!("--groups={}", g.join(","))
    };
    let caps = if u.keep_caps.is_empty() {
        "-all".to_owned()
    } else {
        let keep: Vec<String> = u.keep_caps.iter().map(|c| format!("+{c}")).collect();
        format!("-all,{}", keep.join(","))
    };
    c.arg(format!("--reuid={}", u.uid))
        .arg(format!("--regid={}", u.gid))
        .arg(groups)
        .arg(format!("--bounding-set={caps}"))
        .arg("--inh-caps=-all");
    if u.no_new_privs {
        c.arg("--no-new-privs");
    }
    c.arg("--").args(argv);
    c
}
