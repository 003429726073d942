//! `/system package print`, `/ip service print` and `/user active print` (with or
//! without `detail`, with an optional `where`): the setup `rdsctl doctor` reads.
//! Values come from [`crate::setup`]; layouts from `rds_routeros::system`.

use rds_routeros::{
    ActiveUserRecord, PackageRecord, RenderOptions, ServiceRecord, render_active_user_print,
    render_package_print, render_service_print,
};

use super::expr::{Props, eval};
use super::parse::{Command, Menu, Value};
use crate::config::Behaviour;
use crate::render::Layout;
use crate::setup::Login;

/// Properties `where` may name in these menus.
pub(crate) const WHERE_PROPS: &[&str] = &[
    "name",
    "version",
    "disabled",
    "port",
    "max-sessions",
    "via",
    "address",
];

/// RouterOS's other services, listed around `ssh` as a real box lists them.
const SERVICES: &[(&str, u16)] = &[
    ("telnet", 23),
    ("ftp", 21),
    ("www", 80),
    ("ssh", 22),
    ("www-ssl", 443),
    ("api", 8728),
    ("winbox", 8291),
    ("api-ssl", 8729),
];

fn opts(layout: &Layout) -> RenderOptions {
    RenderOptions {
        width: layout.width,
        line_ending: rds_routeros::LineEnding::Crlf,
        cut_rule: layout.cut_rule,
        ..RenderOptions::default()
    }
}

fn keep(
    cmd: &Command,
    props: Vec<(&'static str, String)>,
    resolve: &mut dyn FnMut(&Value) -> Result<String, String>,
) -> Result<bool, String> {
    match &cmd.filter {
        None => Ok(true),
        Some(f) => eval(f, &Props(props), resolve),
    }
}

/// `/system package` records the filter keeps.
fn packages(
    cmd: &Command,
    behaviour: &Behaviour,
    version: &str,
    resolve: &mut dyn FnMut(&Value) -> Result<String, String>,
) -> Result<Vec<(u32, PackageRecord)>, String> {
    let mut names = vec!["routeros"];
    if behaviour.setup.rose_storage {
        names.push("rose-storage");
    }
    let mut recs = Vec::new();
    for (n, name) in names.into_iter().enumerate() {
        let props = vec![
            ("name", name.to_owned()),
            ("version", version.to_owned()),
            ("disabled", "no".to_owned()),
        ];
        if keep(cmd, props, resolve)? {
            recs.push((
                u32::try_from(n).unwrap_or(u32::MAX),
                PackageRecord {
                    name: name.to_owned(),
                    version: Some(version.to_owned()),
                    disabled: false,
                },
            ));
        }
    }
    Ok(recs)
}

/// Prints one of the three menus into `out`.
pub(crate) fn print(
    cmd: &Command,
    behaviour: &Behaviour,
    logins: &[Login],
    layout: &Layout,
    resolve: &mut dyn FnMut(&Value) -> Result<String, String>,
    out: &mut String,
) -> Result<(), String> {
    let o = opts(layout);
    let version = behaviour
        .version
        .split_whitespace()
        .next()
        .unwrap_or("7.16")
        .to_owned();
    match cmd.menu {
        Menu::SystemPackage => {
            let recs = packages(cmd, behaviour, &version, resolve)?;
            out.push_str(&render_package_print(&recs, &o));
        }
        Menu::IpService => {
            let mut recs = Vec::new();
            for (n, (name, port)) in SERVICES.iter().enumerate() {
                let max = behaviour.setup.ssh_max_sessions;
                let props = vec![
                    ("name", (*name).to_owned()),
                    ("port", port.to_string()),
                    ("max-sessions", max.to_string()),
                    ("disabled", "no".to_owned()),
                ];
                if keep(cmd, props, resolve)? {
                    recs.push((
                        u32::try_from(n).unwrap_or(u32::MAX),
                        ServiceRecord {
                            name: (*name).to_owned(),
                            port: Some(*port),
                            max_sessions: Some(max),
                            disabled: false,
                        },
                    ));
                }
            }
            out.push_str(&render_service_print(&recs, &o));
        }
        Menu::UserActive => {
            let mut recs = Vec::new();
            for (n, l) in logins.iter().enumerate() {
                let props = vec![
                    ("name", l.user.clone()),
                    ("via", "ssh".to_owned()),
                    ("address", l.address.clone()),
                ];
                if keep(cmd, props, resolve)? {
                    recs.push((
                        u32::try_from(n).unwrap_or(u32::MAX),
                        ActiveUserRecord {
                            name: l.user.clone(),
                            via: Some("ssh".into()),
                            address: Some(l.address.clone()),
                            when: Some(crate::render::civil(l.when).text),
                        },
                    ));
                }
            }
            out.push_str(&render_active_user_print(&recs, &o));
        }
        _ => return Err("bad command name".into()),
    }
    Ok(())
}
