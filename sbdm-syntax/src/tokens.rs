//! Turning an expression's tokens into source text for the symbolic core's parser,
//! remembering which byte range came from which token, so that the core's byte-range
//! errors map back to spans.

use proc_macro2::{Delimiter, Spacing, Span, TokenStream, TokenTree};
use sbdm_symbolic::SrcRange;

/// Source text and the span of every byte range that came from one token.
pub struct SpanMap {
    /// The expression as source text for the symbolic core's parser.
    pub text: String,
    pieces: Vec<(SrcRange, Span)>,
    whole: Span,
    /// The last token pushed and the one before it (spacing decisions).
    prev: String,
    prev2: String,
    /// The last token was joint punctuation (`*` of `**`): no space after it.
    glue: bool,
}

impl SpanMap {
    /// Flattens `tokens` to text, spaced as a person writes expressions.
    pub fn new(tokens: &TokenStream, whole: Span) -> Self {
        let mut m = SpanMap {
            text: String::new(),
            pieces: Vec::new(),
            whole,
            prev: String::new(),
            prev2: String::new(),
            glue: false,
        };
        m.push_stream(tokens);
        m
    }

    /// Whether `s` is written after a space: as a person would write the expression
    /// (`-0.5 * beta.sqrt()`, not `- 0.5 * beta . sqrt ( )`), which is also how a
    /// stored declaration ([`SdeSpec::to_source`](sbdm_symbolic::sde::SdeSpec::to_source))
    /// reads.
    fn space_before(&self, s: &str) -> bool {
        let prev = self.prev.as_str();
        let word = |p: &str| p.starts_with(|c: char| c.is_alphanumeric() || c == '_');
        let operator =
            |p: &str| matches!(p, "" | "+" | "-" | "*" | "/" | "(" | "[" | "{" | "," | "=");
        !(self.text.is_empty()
            || self.glue
            || matches!(prev, "(" | "[" | "{" | ".")
            || matches!(s, ")" | "]" | "}" | "." | ",")
            || (s == "(" && (word(prev) || prev == ")"))
            || (prev == "-" && operator(&self.prev2)))
    }

    fn push(&mut self, s: &str, span: Span, joint: bool) {
        if self.space_before(s) {
            self.text.push(' ');
        }
        let start = self.text.len();
        self.text.push_str(s);
        self.pieces.push((
            SrcRange {
                start,
                end: self.text.len(),
            },
            span,
        ));
        self.glue = joint;
        self.prev2 = std::mem::replace(&mut self.prev, s.to_string());
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
pub fn error_between(first: Span, last: Span, message: &str) -> syn::Error {
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
