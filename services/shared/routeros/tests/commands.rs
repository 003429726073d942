//! Exact command text, newtype validation (injection refused), quoting and error classes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use rds_routeros::*;

const ID: &str = "pvc-0f923194-922a-5dd8-b376-c2c6ccb56dd8";

fn slot(s: &str) -> Slot {
    Slot::new(s).unwrap()
}
fn path(s: &str) -> DiskPath {
    DiskPath::new(s).unwrap()
}
fn export(id: &str) -> Option<NvmeExport> {
    Some(NvmeExport {
        port: Port::new(4420).unwrap(),
        nqn: Nqn::for_volume(&slot(id)),
        allow_hosts: None,
    })
}

#[test]
fn disk_add_closed_for_storage_fencing() {
    let mut closed = export(ID).unwrap();
    closed.allow_hosts = Some(AllowHosts::nobody());
    let add = Command::DiskAddFile {
        file_path: path(&format!("/storage-pool/metal-csi/{ID}.img")),
        file_size: FileSize::new(1 << 20).unwrap(),
        slot: slot(ID),
        export: Some(closed.clone()),
        comment: None,
    };
    assert_eq!(
        add.to_string(),
        format!(
            "/disk add type=file file-path=/storage-pool/metal-csi/{ID}.img file-size=1048576 \
             slot={ID} nvme-tcp-export=yes nvme-tcp-server-port=4420 \
             nvme-tcp-server-nqn=nqn.2000-02.com.mikrotik:{ID} \
             nvme-tcp-server-allow-host-name=\"nqn.2000-02.com.mikrotik:rds-csi-no-host\""
        )
    );
    let restore = Command::DiskAddCopy {
        source: slot("snap-x"),
        file_path: path(&format!("/storage-pool/metal-csi/{ID}.img")),
        file_size: None,
        slot: slot(ID),
        export: CopyExport::Enabled(closed),
        comment: None,
    };
    assert!(
        restore.to_string().ends_with(
            " nvme-tcp-server-allow-host-name=\"nqn.2000-02.com.mikrotik:rds-csi-no-host\""
        ),
        "{restore}"
    );
}

#[test]
fn disk_add_file() {
    let cmd = Command::DiskAddFile {
        file_path: path(&format!("/storage-pool/metal-csi/{ID}.img")),
        file_size: FileSize::new(round_up_mib(5 * 1024 * 1024 * 1024).unwrap()).unwrap(),
        slot: slot(ID),
        export: export(ID),
        comment: None,
    };
    assert_eq!(
        cmd.to_string(),
        format!(
            "/disk add type=file file-path=/storage-pool/metal-csi/{ID}.img file-size=5368709120 \
             slot={ID} nvme-tcp-export=yes nvme-tcp-server-port=4420 \
             nvme-tcp-server-nqn=nqn.2000-02.com.mikrotik:{ID}"
        )
    );
    assert_eq!(cmd.verb(), "disk add");
    assert_eq!(cmd.slot().map(Slot::as_str), Some(ID));
    assert!(cmd.is_mutating());
    let no_export = Command::DiskAddFile {
        file_path: path("/storage-pool/x.img"),
        file_size: FileSize::new(1 << 20).unwrap(),
        slot: slot("x"),
        export: None,
        comment: None,
    };
    assert_eq!(
        no_export.to_string(),
        "/disk add type=file file-path=/storage-pool/x.img file-size=1048576 slot=x"
    );
}

#[test]
fn disk_add_copy() {
    let snap = "snap-0f923194-922a-5dd8-b376-c2c6ccb56dd8-at-0123456789";
    let create = Command::DiskAddCopy {
        source: slot(ID),
        file_path: path(&format!("/storage-pool/metal-csi/{snap}.img")),
        file_size: None,
        slot: slot(snap),
        export: CopyExport::Inherit,
        comment: None,
    };
    assert_eq!(
        create.to_string(),
        format!(
            "/disk add type=file copy-from=[find slot={ID}] \
             file-path=/storage-pool/metal-csi/{snap}.img slot={snap}"
        )
    );
    let unexported = Command::DiskAddCopy {
        source: slot(ID),
        file_path: path(&format!("/storage-pool/metal-csi/{snap}.img")),
        file_size: None,
        slot: slot(snap),
        export: CopyExport::Disabled,
        comment: None,
    };
    assert_eq!(
        unexported.to_string(),
        format!(
            "/disk add type=file copy-from=[find slot={ID}] \
             file-path=/storage-pool/metal-csi/{snap}.img slot={snap} nvme-tcp-export=no"
        )
    );
    let restore = Command::DiskAddCopy {
        source: slot(snap),
        file_path: path("/storage-pool/metal-csi/pvc-new.img"),
        file_size: Some(FileSize::new(5368709120).unwrap()),
        slot: slot("pvc-new"),
        export: CopyExport::Enabled(export("pvc-new").unwrap()),
        comment: None,
    };
    assert_eq!(
        restore.to_string(),
        format!(
            "/disk add type=file copy-from=[find slot={snap}] \
             file-path=/storage-pool/metal-csi/pvc-new.img file-size=5368709120 slot=pvc-new \
             nvme-tcp-export=yes nvme-tcp-server-port=4420 \
             nvme-tcp-server-nqn=nqn.2000-02.com.mikrotik:pvc-new"
        )
    );
    assert_eq!(restore.slot().map(Slot::as_str), Some("pvc-new"));
}

/// One rendering case: the command, its text, its verb and the slot it names.
type Case = (Command, String, &'static str, Option<&'static str>);

/// `/disk print` with every kind of selector.
fn disk_print_cases() -> Vec<Case> {
    vec![
        (
            Command::DiskPrint(DiskSelector::Slot(slot(ID))),
            format!("/disk print detail where slot={ID}"),
            "disk print",
            Some(ID),
        ),
        (
            Command::DiskPrint(DiskSelector::All),
            "/disk print detail".into(),
            "disk print",
            None,
        ),
        (
            Command::DiskPrint(DiskSelector::Nqn(
                Nqn::new("nqn.2000-02.com.mikrotik:pvc-a").unwrap(),
            )),
            "/disk print detail where nvme-tcp-server-nqn=\"nqn.2000-02.com.mikrotik:pvc-a\""
                .into(),
            "disk print",
            None,
        ),
        (
            Command::DiskPrint(DiskSelector::SlotMatches(
                RegexPattern::contains("pvc").unwrap(),
            )),
            "/disk print detail where slot~\"pvc\"".into(),
            "disk print",
            None,
        ),
        (
            Command::DiskPrint(DiskSelector::SlotMatches(
                RegexPattern::starts_with("snap-").unwrap(),
            )),
            "/disk print detail where slot~\"^snap-\"".into(),
            "disk print",
            None,
        ),
        (
            Command::DiskPrint(DiskSelector::MountPoint(PoolName::default())),
            "/disk print detail where mount-point=\"storage-pool\"".into(),
            "disk print",
            None,
        ),
        (
            Command::DiskPrint(DiskSelector::MountPoint(PoolName::new("pool2").unwrap())),
            "/disk print detail where mount-point=\"pool2\"".into(),
            "disk print",
            None,
        ),
    ]
}

/// Set, remove, file print, monitor and the resource probe.
fn set_remove_monitor_probe_cases() -> Vec<Case> {
    vec![
        (
            Command::DiskSetFileSize {
                slot: slot(ID),
                file_size: FileSize::new(10737418240).unwrap(),
            },
            format!("/disk set [find slot={ID}] file-size=10737418240"),
            "disk set",
            Some(ID),
        ),
        (
            Command::DiskRemove { slot: slot(ID) },
            format!("/disk remove [find slot={ID}]"),
            "disk remove",
            Some(ID),
        ),
        (
            Command::FilePrint(FileSelector::Name(path(&format!(
                "/storage-pool/metal-csi/{ID}.img"
            )))),
            format!("/file print detail where name=\"storage-pool/metal-csi/{ID}.img\""),
            "file print",
            None,
        ),
        (
            Command::FilePrint(FileSelector::NameMatches(
                RegexPattern::contains("storage-pool/metal-csi").unwrap(),
            )),
            "/file print detail where name~\"storage-pool/metal-csi\"".into(),
            "file print",
            None,
        ),
        (
            Command::FileRemove {
                path: path(&format!("/storage-pool/metal-csi/{ID}.img")),
            },
            format!("/file remove [find name=\"storage-pool/metal-csi/{ID}.img\"]"),
            "file remove",
            None,
        ),
        (
            Command::DiskMonitorTraffic {
                slot: slot("storage-pool"),
            },
            "/disk monitor-traffic storage-pool once".into(),
            "disk monitor-traffic",
            Some("storage-pool"),
        ),
        (
            Command::SystemResourcePrint,
            "/system resource print".into(),
            "system resource print",
            None,
        ),
    ]
}

#[test]
fn prints_set_remove_monitor_probe() {
    for (cmd, text, verb, s) in disk_print_cases()
        .into_iter()
        .chain(set_remove_monitor_probe_cases())
    {
        assert_eq!(cmd.to_string(), text);
        assert_eq!(cmd.verb(), verb);
        assert_eq!(cmd.slot().map(Slot::as_str), s);
    }
}

const INJECTIONS: &[&str] = &[
    "a\"b",
    "a;b",
    "a$b",
    "a\\b",
    "a[b",
    "a]b",
    "a\nb",
    "a\rb",
    "a b",
    "a=b",
    "a/system reboot",
    "x; /system reboot",
    "x\n/system reboot",
    "$(reboot)",
    "[/system reboot]",
    "a\0b",
    "ä",
    "a{b}",
    "a?b",
    "'a'",
    "a`b",
];

#[test]
fn injection_refused_by_constructors() {
    for bad in INJECTIONS {
        assert!(Slot::new(bad).is_err(), "slot {bad:?}");
        assert!(PoolName::new(bad).is_err(), "pool {bad:?}");
        assert!(
            DiskPath::new(&format!("/storage-pool/{bad}")).is_err(),
            "path {bad:?}"
        );
        assert!(
            Nqn::new(&format!("nqn.2000-02.com.mikrotik:{bad}")).is_err(),
            "nqn {bad:?}"
        );
        assert!(RegexPattern::contains(bad).is_err(), "regex {bad:?}");
    }
    let long = "a".repeat(129);
    assert!(Slot::new(&long).is_err());
    assert!(Slot::new(&"a".repeat(128)).is_ok());
    assert!(Slot::new("").is_err());
    assert!(Slot::new("-pvc").is_err());
    assert!(Slot::new("Pvc-1").is_ok());
    assert!(DiskPath::new(&format!("/{}", "a".repeat(255))).is_err());
    assert!(DiskPath::new(&format!("/{}", "a".repeat(254))).is_ok());
    for p in [
        "",
        "/",
        "rel/x.img",
        "/a//b",
        "/a/./b",
        "/a/../b",
        "/a/b/",
        "/..",
        "/a/.",
    ] {
        assert!(DiskPath::new(p).is_err(), "path {p:?}");
    }
    assert!(DiskPath::new("/a/.hidden/..x.img").is_ok());
    for n in [
        "nqn.2000-02.com.mikrotik:",
        "nqn.2000-2.com.mikrotik:x",
        "nqn.20000-02.com.mikrotik:x",
        "nqn.2000-02.com.mikrotik:X",
        "nqn.2000-02.:x",
        "nqn.2000-02com.mikrotik:x",
        "iqn.2000-02.com.mikrotik:x",
        "nqn.2000-02.com.Mikrotik:x",
    ] {
        assert!(Nqn::new(n).is_err(), "nqn {n:?}");
    }
    assert!(Nqn::new(&format!("nqn.2000-02.com.mikrotik:{}", "a".repeat(198))).is_ok());
    assert!(Nqn::new(&format!("nqn.2000-02.com.mikrotik:{}", "a".repeat(199))).is_err());
    assert_eq!(
        Nqn::for_volume(&slot("PVC-AB")).as_str(),
        "nqn.2000-02.com.mikrotik:pvc-ab"
    );
    assert!(Port::new(0).is_err());
    assert!(Port::new(65536).is_err());
    assert_eq!(Port::new(65535).unwrap().get(), 65535);
    assert!("4420".parse::<Port>().is_ok());
    assert!("44x".parse::<Port>().is_err());
    assert!(FileSize::new(0).is_err());
}

#[test]
fn disk_path_forms() {
    let p = path("/storage-pool/metal-csi/x.img");
    assert_eq!(p.file_name(), "storage-pool/metal-csi/x.img");
    assert_eq!(DiskPath::from_file_name(p.file_name()).unwrap(), p);
    assert!(p.is_under(&path("/storage-pool/metal-csi")));
    assert!(!p.is_under(&path("/storage-pool/metal")));
}

#[test]
fn round_up_mib_rounds_up() {
    assert_eq!(round_up_mib(0), Some(0));
    assert_eq!(round_up_mib(1), Some(1 << 20));
    assert_eq!(round_up_mib(1 << 20), Some(1 << 20));
    assert_eq!(round_up_mib((1 << 20) + 1), Some(2 << 20));
    assert_eq!(round_up_mib(1_610_612_736), Some(1_610_612_736)); // 1.5 GiB stays 1.5 GiB
    assert_eq!(round_up_mib(u64::MAX), None);
}

/// Every backslash in a quoted value must start one of the legal escapes of docs/routeros.md §3.1.
fn only_legal_escapes(q: &str) -> bool {
    let inner = &q[1..q.len() - 1];
    let b = inner.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => {
                let n = b.get(i + 1).copied();
                let hex = |x: Option<u8>| {
                    x.is_some_and(|c| c.is_ascii_digit() || (b'A'..=b'F').contains(&c))
                };
                if matches!(
                    n,
                    Some(
                        b'"' | b'\\'
                            | b'n'
                            | b'r'
                            | b't'
                            | b'$'
                            | b'?'
                            | b'_'
                            | b'a'
                            | b'b'
                            | b'f'
                            | b'v'
                    )
                ) {
                    i += 2;
                } else if hex(n) && hex(b.get(i + 2).copied()) {
                    i += 3;
                } else {
                    return false;
                }
            }
            b'"' | b'$' => return false,
            _ => i += 1,
        }
    }
    true
}

#[test]
fn quoting_rules() {
    assert_eq!(quote_value("pvc-1").unwrap(), "pvc-1");
    assert_eq!(
        quote_value("/storage-pool/x.img").unwrap(),
        "/storage-pool/x.img"
    );
    assert_eq!(
        quote_value("nqn.2000-02.com.mikrotik:x").unwrap(),
        "nqn.2000-02.com.mikrotik:x"
    );
    assert_eq!(quote_value("").unwrap(), "\"\"");
    assert_eq!(quote_value("a b").unwrap(), "\"a b\"");
    assert_eq!(quote_value("x$y z").unwrap(), "\"x\\$y z\"");
    assert_eq!(quote_value("x\\y").unwrap(), "\"x\\\\y\"");
    assert_eq!(quote_value("say \"hi\"?").unwrap(), "\"say \\\"hi\\\"\\?\"");
    assert_eq!(quote_value("a\tb\nc\rd").unwrap(), "\"a\\tb\\nc\\rd\"");
    assert_eq!(quote_value("a;b[c]").unwrap(), "\"a;b[c]\"");
    assert_eq!(quote_where_value("1.2.3.4/24").unwrap(), "\"1.2.3.4/24\"");
    assert_eq!(quote_where_value("pvc-1").unwrap(), "pvc-1");
    assert_eq!(quote_string("pvc").unwrap(), "\"pvc\"");
    for bad in ["a\0b", "a\x01b", "a\x7fb", "é", "a\x1bb"] {
        assert!(
            matches!(quote_value(bad), Err(RouterOsError::Unquotable { .. })),
            "{bad:?}"
        );
        assert!(quote_string(bad).is_err());
    }
    // quote → unquote round trip, and only legal escapes.
    for s in ["x$y z", "x\\y", "\"", "a\tb\nc", "?$\\\"", "", "plain"] {
        let q = quote_string(s).unwrap();
        assert!(only_legal_escapes(&q), "{q}");
        assert_eq!(unquote(&q).unwrap(), s);
    }
    // strict unquote refuses what RouterOS refuses
    for bad in [
        "\"x\\y\"",
        "\"a\\.b\"",
        "\"x$y\"",
        "\"a\"b\"",
        "abc",
        "\"abc",
        "\"\\\"",
        "\"\\4\"",
    ] {
        assert!(unquote(bad).is_err(), "{bad}");
    }
    assert_eq!(unquote("\"\\48\\45\\4C\\4C\\4F\"").unwrap(), "HELLO");
    assert_eq!(unquote("\"a\\_b\"").unwrap(), "a b");
    // output side never fails and escapes control/non-ASCII as \XX
    assert_eq!(quote_output("é\x01"), "\"\\C3\\A9\\01\"");
}

#[test]
fn regex_values_use_only_legal_escapes() {
    let r = RegexPattern::contains("storage-pool/metal-csi/pvc-1.img").unwrap();
    assert_eq!(r.as_str(), "storage-pool/metal-csi/pvc-1[.]img");
    let cmd = Command::FilePrint(FileSelector::NameMatches(r));
    let text = cmd.to_string();
    assert_eq!(
        text,
        "/file print detail where name~\"storage-pool/metal-csi/pvc-1[.]img\""
    );
    assert!(!text.contains('\\'));
    let q = &text[text.find('"').unwrap()..];
    assert!(only_legal_escapes(q));
    for bad in ["a*", "a+", "(a)", "a|b", "a\\.b", "^a", "a$", "a b", ""] {
        assert!(RegexPattern::contains(bad).is_err(), "{bad:?}");
    }
}

/// Kind of the error a device reply classifies as, if any.
fn kind_of(text: &str) -> Option<RouterOsErrorKind> {
    classify_error(text).map(|e| e.kind)
}

/// Parse errors that carry a `(line L column C)` position.
fn classifies_positioned_errors() {
    use RouterOsErrorKind as K;
    let c = kind_of;
    assert_eq!(
        c("bad command name foo (line 1 column 2)\r\n"),
        Some(K::BadCommandName {
            name: "foo".into(),
            position: Some(Position { line: 1, column: 2 })
        })
    );
    assert_eq!(
        c("expected end of command (line 1 column 24)"),
        Some(K::ExpectedEndOfCommand {
            position: Some(Position {
                line: 1,
                column: 24
            })
        })
    );
    assert_eq!(
        c("syntax error (line 1 column 10)\r\n\r\n"),
        Some(K::SyntaxError {
            position: Some(Position {
                line: 1,
                column: 10
            })
        })
    );
    assert_eq!(
        c("expected command name (line 1 column 8)"),
        Some(K::ExpectedCommandName {
            position: Some(Position { line: 1, column: 8 })
        })
    );
}

/// Item, argument, permission, space and `failure:` errors.
fn classifies_item_and_argument_errors() {
    use RouterOsErrorKind as K;
    let c = kind_of;
    assert_eq!(c("no such item"), Some(K::NoSuchItem));
    assert_eq!(c("Script Error: no such item"), Some(K::NoSuchItem));
    assert_eq!(c("expected item id"), Some(K::ExpectedItemId));
    assert_eq!(
        c("input does not match any value of value-name"),
        Some(K::InputDoesNotMatch {
            argument: "value-name".into()
        })
    );
    assert_eq!(
        c("value of mtu contains invalid trailing characters"),
        Some(K::InvalidTrailingCharacters {
            argument: "mtu".into()
        })
    );
    assert_eq!(
        c("invalid value for argument file-size"),
        Some(K::InvalidValue {
            argument: "file-size".into()
        })
    );
    assert_eq!(
        c("not enough permissions (9)"),
        Some(K::NotEnoughPermissions)
    );
    assert_eq!(c("failure: not enough space"), Some(K::NotEnoughSpace));
    assert_eq!(c("not enough space on disk"), Some(K::NotEnoughSpace));
    assert_eq!(
        c("failure: item with such name already exists"),
        Some(K::AlreadyExists)
    );
    assert_eq!(
        c("failure: already have disk with such slot"),
        Some(K::AlreadyExists)
    );
    assert_eq!(
        c("failure: authentication failure"),
        Some(K::Failure("authentication failure".into()))
    );
}

#[test]
fn error_classifier() {
    let c = kind_of;
    classifies_positioned_errors();
    classifies_item_and_argument_errors();
    let e = classify_error("failure: not enough space\r\n").unwrap();
    assert_eq!(e.text, "failure: not enough space");
    assert_eq!(e.to_string(), "failure: not enough space");
    assert!(classify_error("no such item").unwrap().is_not_found());
    // Never from record content.
    assert_eq!(c(""), None);
    assert_eq!(c("  name: no such item"), None);
    assert_eq!(c(" 0  BM  type=file model=\"no such item\""), None);
    assert_eq!(c("               model=\"failure: already exists\""), None);
    assert_eq!(c("type=file model=\"not enough space\""), None);
    assert_eq!(c("Flags: X - DISABLED"), None);
}
