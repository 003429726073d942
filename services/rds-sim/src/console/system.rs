//! `/system ...`, `/ip service`, `/user active`.

use rds_routeros::format_human_size;

use super::exec::{Ctx, Ret};
use super::parse::{Command, Menu, Verb};
use crate::render;

impl Ctx<'_, '_> {
    pub(super) fn system(&mut self, cmd: &Command, out: &mut String) -> Result<Ret, String> {
        match (cmd.menu, cmd.verb) {
            (Menu::SystemResource, Verb::Print) => {
                out.push_str(&render::singleton(&self.resource(), 25));
                Ok(Ret::Nothing)
            }
            (Menu::SystemIdentity, Verb::Print) => {
                out.push_str(&render::singleton(&[("name".into(), self.identity())], 6));
                Ok(Ret::Nothing)
            }
            (Menu::SystemResource | Menu::SystemIdentity, Verb::Get) => self.system_get(cmd),
            (Menu::SystemIdentity, Verb::Set) => {
                if let Some(v) = cmd.arg("name") {
                    let n = self.text(v)?;
                    self.dev.state.identity = Some(n);
                    self.dev.dirty = true;
                }
                Ok(Ret::Nothing)
            }
            (Menu::SystemPackage | Menu::IpService | Menu::UserActive, Verb::Print) => {
                let (behaviour, sess) = (self.dev.behaviour, self.sess);
                let mut text = String::new();
                super::setup_menus::print(
                    cmd,
                    behaviour,
                    &sess.logins,
                    &sess.layout,
                    &mut |v| self.text(v),
                    &mut text,
                )?;
                out.push_str(&text);
                Ok(Ret::Nothing)
            }
            (Menu::System, Verb::Reboot) => {
                self.reboot = true;
                Ok(Ret::Nothing)
            }
            _ => Err("bad command name".into()),
        }
    }

    fn system_get(&mut self, cmd: &Command) -> Result<Ret, String> {
        let Some((p, _)) = cmd.positional.first() else {
            return Err("input does not match any value of value-name".into());
        };
        let p = self.text(p)?;
        let pairs = if cmd.menu == Menu::SystemResource {
            self.resource()
        } else {
            vec![("name".into(), self.identity())]
        };
        pairs
            .into_iter()
            .find(|(k, _)| *k == p)
            .map(|(_, v)| Ret::Text(v))
            .ok_or_else(|| "input does not match any value of value-name".into())
    }

    fn identity(&self) -> String {
        self.dev
            .state
            .identity
            .clone()
            .unwrap_or_else(|| self.dev.behaviour.identity.clone())
    }

    fn resource(&self) -> Vec<(String, String)> {
        let b = self.dev.behaviour;
        let p = |k: &str, v: String| (k.to_owned(), v);
        vec![
            p("uptime", render::uptime(self.sess.uptime_secs)),
            p("version", b.version.clone()),
            p("free-memory", format_human_size(30 << 30)),
            p("total-memory", format_human_size(32 << 30)),
            p("cpu-count", "16".into()),
            p("cpu-load", "1%".into()),
            p("free-hdd-space", format_human_size(1167 << 20)),
            p("total-hdd-space", format_human_size(1280 << 20)),
            p("architecture-name", "arm64".into()),
            p("board-name", b.board_name.clone()),
        ]
    }
}
