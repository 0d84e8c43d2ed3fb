//! The printable result of a derivation: every derived equation as text and LaTeX.

use std::borrow::Cow;
use std::fmt;

/// How an entry of a derivation was obtained.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    /// Declared by the user.
    Given,
    /// Derived in closed form.
    ClosedForm,
    /// No closed form was found: computed by quadrature or a bracketed solve.
    Numeric,
}

impl Method {
    fn tag(self) -> &'static str {
        match self {
            Method::Given => "given",
            Method::ClosedForm => "closed form",
            Method::Numeric => "numeric",
        }
    }
}

/// One derived equation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// A stable key, e.g. `"b2"`.
    pub key: Cow<'static, str>,
    /// The left-hand side as text, e.g. `"b(t)^2"`.
    pub label: Cow<'static, str>,
    /// The right-hand side as text.
    pub text: Cow<'static, str>,
    /// The whole equation in LaTeX.
    pub latex: Cow<'static, str>,
    /// How it was obtained.
    pub method: Method,
}

/// Every derived equation of a declared SDE. `Display` prints text; [`Derivation::latex`]
/// the same in LaTeX.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Derivation {
    /// The SDE's name.
    pub name: Cow<'static, str>,
    /// Its doc comment, if any.
    pub doc: Option<Cow<'static, str>>,
    /// Header lines: params, time range, lets.
    pub header: Vec<Cow<'static, str>>,
    /// The equations, in order.
    pub entries: Vec<Entry>,
}

impl Derivation {
    /// The entry with this key (`"F"`, `"g2"`, `"a"`, `"b2"`, `"b"`, `"sigma"`,
    /// `"log_snr"`, `"dlog_snr"`, `"t_of_log_snr"`, `"score"`, `"reverse_sde"`,
    /// `"pf_ode"`, `"prior"`, ...).
    pub fn entry(&self, key: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.key == key)
    }

    /// Whether every derived entry is in closed form (no quadrature, no numeric solve).
    pub fn is_closed_form(&self) -> bool {
        self.entries.iter().all(|e| e.method != Method::Numeric)
    }

    /// The keys of the entries computed numerically.
    pub fn numeric_parts(&self) -> Vec<&str> {
        self.entries
            .iter()
            .filter(|e| e.method == Method::Numeric)
            .map(|e| &*e.key)
            .collect()
    }

    /// The derivation as a LaTeX `align*` block with a heading.
    pub fn latex(&self) -> String {
        let mut s = String::new();
        s.push_str(&format!("% {}\n", self.name));
        if let Some(doc) = &self.doc {
            s.push_str(&format!("% {doc}\n"));
        }
        s.push_str("\\begin{align*}\n");
        let n = self.entries.len();
        for (i, e) in self.entries.iter().enumerate() {
            let end = if i + 1 < n { " \\\\" } else { "" };
            s.push_str(&format!(
                "  {} && \\text{{({})}}{}\n",
                e.latex,
                e.method.tag(),
                end
            ));
        }
        s.push_str("\\end{align*}\n");
        s
    }
}

impl fmt::Display for Derivation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.doc {
            Some(doc) => writeln!(f, "{}: {}", self.name, doc)?,
            None => writeln!(f, "{}", self.name)?,
        }
        for h in &self.header {
            writeln!(f, "  {h}")?;
        }
        let width = self
            .entries
            .iter()
            .map(|e| e.label.chars().count())
            .max()
            .unwrap_or(0);
        for e in &self.entries {
            let pad = width - e.label.chars().count();
            writeln!(
                f,
                "  {}{} = {}   [{}]",
                e.label,
                " ".repeat(pad),
                e.text,
                e.method.tag()
            )?;
        }
        Ok(())
    }
}
