//! The RouterOS console subset of docs/routeros.md §6: a parser with RouterOS quoting and exact
//! `(line L column C)` error positions, the `where` evaluator and the command executor.

mod btrfs;
mod exec;
mod expr;
mod parse;
mod props;
mod select;
mod setup_menus;
mod storage;
mod system;

pub(crate) use exec::{Outcome, Session, run_line};
