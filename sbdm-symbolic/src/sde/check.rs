//! Checks on a declaration that need the parsed source: where `x` occurs, which
//! divisors vanish, which drift terms are not linear in `x`.

use crate::parse::{Ast, AstKind, BinOp, Scope, SrcRange};
use crate::Expr;

/// The first occurrence of the identifier `name` in `ast`.
pub(crate) fn find_ident(ast: &Ast, name: &str) -> Option<SrcRange> {
    let mut found = None;
    ast.walk(&mut |node: &Ast| {
        if found.is_none() {
            if let AstKind::Ident(id) = &node.kind {
                if id == name {
                    found = Some(node.range);
                }
            }
        }
    });
    found
}

/// Every divisor in `ast`.
pub(crate) fn divisors(ast: &Ast) -> Vec<&Ast> {
    let mut out = Vec::new();
    collect_divisors(ast, &mut out);
    out
}

fn collect_divisors<'a>(ast: &'a Ast, out: &mut Vec<&'a Ast>) {
    if let AstKind::Binary {
        op: BinOp::Div,
        rhs,
        ..
    } = &ast.kind
    {
        out.push(rhs);
    }
    for c in ast.children() {
        collect_divisors(c, out);
    }
}

/// The top-level terms of a sum or difference, with their sign folded in by the caller's
/// lowering (each term lowered on its own).
pub(crate) fn top_terms(ast: &Ast) -> Vec<&Ast> {
    match &ast.kind {
        AstKind::Binary {
            op: BinOp::Add | BinOp::Sub,
            lhs,
            rhs,
        } => {
            let mut v = top_terms(lhs);
            v.extend(top_terms(rhs));
            v
        }
        AstKind::Paren(inner) => top_terms(inner),
        _ => vec![ast],
    }
}

/// Lowers a sub-expression, ignoring errors (the whole expression already lowered).
pub(crate) fn lower_quiet(ast: &Ast, scope: &Scope) -> Option<Expr> {
    ast.lower(scope).ok()
}
