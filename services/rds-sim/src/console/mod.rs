//! The RouterOS console subset of docs/routeros.md §6: a parser with RouterOS quoting and exact
//! `(line L column C)` error positions, the `where` evaluator and the command executor.

mod exec;
mod expr;
mod parse;
mod setup_menus;

pub(crate) use exec::{Outcome, Session, run_line};
