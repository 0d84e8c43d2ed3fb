//! Turning an expression's tokens into source text for the symbolic core's parser,
//! remembering which byte range came from which token, so that the core's byte-range
//! errors map back to spans.

use proc_macro2::{Delimiter, Spacing, Span, TokenStream, TokenTree};
use sbdm_symbolic::SrcRange;

/// Source text and the span of every byte range that came from one token.
pub(crate) struct SpanMap {
    pub text: String,
    pieces: Vec<(SrcRange, Span)>,
    whole: Span,
}

impl SpanMap {
    /// Flattens `tokens` to text, separated by spaces except inside joint punctuation.
    pub fn new(tokens: &TokenStream, whole: Span) -> Self {
        let mut m = SpanMap {
            text: String::new(),
            pieces: Vec::new(),
            whole,
        };
        m.push_stream(tokens);
        m
    }

    fn push(&mut self, s: &str, span: Span, joint: bool) {
        let start = self.text.len();
        self.text.push_str(s);
        self.pieces.push((
            SrcRange {
                start,
                end: self.text.len(),
            },
            span,
        ));
        if !joint {
            self.text.push(' ');
        }
    }

    fn push_stream(&mut self, tokens: &TokenStream) {
        for tt in tokens.clone() {
            match tt {
                TokenTree::Group(g) => {
                    let (open, close) = match g.delimiter() {
                        Delimiter::Parenthesis => ("(", ")"),
                        Delimiter::Bracket => ("[", "]"),
                        Delimiter::Brace => ("{", "}"),
                        Delimiter::None => ("", ""),
                    };
                    if !open.is_empty() {
                        self.push(open, g.span_open(), false);
                    }
                    self.push_stream(&g.stream());
                    if !close.is_empty() {
                        self.push(close, g.span_close(), false);
                    }
                }
                TokenTree::Punct(p) => {
                    let joint = p.spacing() == Spacing::Joint;
                    self.push(&p.as_char().to_string(), p.span(), joint);
                }
                TokenTree::Ident(i) => self.push(&i.to_string(), i.span(), false),
                TokenTree::Literal(l) => self.push(&l.to_string(), l.span(), false),
            }
        }
    }

    /// The first and last spans of the tokens overlapping `range`.
    pub fn spans(&self, range: SrcRange) -> (Span, Span) {
        let hit: Vec<Span> = self
            .pieces
            .iter()
            .filter(|(r, _)| r.start < range.end.max(range.start + 1) && range.start < r.end)
            .map(|(_, s)| *s)
            .collect();
        match (hit.first(), hit.last()) {
            (Some(a), Some(b)) => (*a, *b),
            _ => match self.pieces.last() {
                Some((_, s)) => (*s, *s),
                None => (self.whole, self.whole),
            },
        }
    }

    /// The spans of the whole expression.
    pub fn whole(&self) -> (Span, Span) {
        match (self.pieces.first(), self.pieces.last()) {
            (Some((_, a)), Some((_, b))) => (*a, *b),
            _ => (self.whole, self.whole),
        }
    }
}

/// A `syn::Error` from `first` to `last` (joined on stable through `new_spanned`).
pub(crate) fn error_between(first: Span, last: Span, message: &str) -> syn::Error {
    // Any valid punctuation will do (`_` is not one: `proc_macro` panics on it).
    let mut a = proc_macro2::Punct::new('#', Spacing::Alone);
    a.set_span(first);
    let mut b = proc_macro2::Punct::new('#', Spacing::Alone);
    b.set_span(last);
    let ts: TokenStream = [TokenTree::Punct(a), TokenTree::Punct(b)]
        .into_iter()
        .collect();
    syn::Error::new_spanned(ts, message)
}
