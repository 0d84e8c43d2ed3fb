//! The small computer-algebra core of sbdm.
//!
//! One parser, one differentiator, one simplifier for the `sde!` macro, the runtime
//! and the `sbdm` CLI: expression trees in canonical form ([`Expr`]), `d/dt`
//! ([`Expr::diff`]), table-driven `∫ dt` that says [`NotIntegrable`] instead of
//! guessing ([`Expr::integrate`]), evaluation, printing as Rust source, plain text and
//! LaTeX, parsing of the macro's expression language ([`parse`]), numerics used where
//! no closed form exists ([`numeric`]), and the derivation of everything a diffusion
//! model needs from a declared forward SDE ([`sde`]).
//!
//! The core knows nothing of `proc_macro2::Span`: errors carry byte ranges into the
//! source text they were parsed from, and the macro maps them back to spans.

mod compile;
mod diff;
mod expr;
mod integrate;
pub mod numeric;
pub mod parse;
mod print;
pub mod sde;
mod simplify;
mod solve;

pub use compile::{Compiled, UnboundSymbol};
pub use expr::{Constant, EvalError, Expr, Func, Node, Num};
pub use integrate::NotIntegrable;
pub use parse::{parse, Ast, AstKind, ParseError, SrcRange};
