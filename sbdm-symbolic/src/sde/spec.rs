//! The input of a derivation: a declared SDE as source text, and the diagnostics
//! that point back into it.

use crate::parse::SrcRange;

/// A parameter of a declared SDE: a name and the source of its default value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Param {
    /// The parameter's name (becomes a public struct field).
    pub name: String,
    /// The source of its default value (a constant expression), if one was given.
    pub default: Option<String>,
}

/// A declared forward SDE, every expression as Rust-expression source text.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SdeSpec {
    /// The type name, e.g. `VpSde`.
    pub name: String,
    /// The doc comment, if any.
    pub doc: Option<String>,
    /// Parameters, in declaration order.
    pub params: Vec<Param>,
    /// `time = [t_min, T]`, as two constant expressions.
    pub time: Option<(String, String)>,
    /// `let name = expr;` bindings over `t`, the params and earlier lets.
    pub lets: Vec<(String, String)>,
    /// `drift = f(x, t)`.
    pub drift: Option<String>,
    /// `diffusion = g(t)`.
    pub diffusion: Option<String>,
    /// `mean = a(t)`.
    pub mean: Option<String>,
    /// `std = b(t)`.
    pub std: Option<String>,
}

impl SdeSpec {
    /// The declaration as source text, exactly what goes between the braces of
    /// `sde! { .. }` (and what a `.sde` file holds): parsed back, it gives this spec.
    ///
    /// ```
    /// use sbdm_symbolic::sde::{Param, SdeSpec};
    /// let spec = SdeSpec {
    ///     name: "Bm".into(),
    ///     doc: Some("Brownian motion.".into()),
    ///     params: vec![Param { name: "s".into(), default: Some("2.0".into()) }],
    ///     time: Some(("1e-3".into(), "1.0".into())),
    ///     mean: Some("1.0".into()),
    ///     std: Some("s * t.sqrt()".into()),
    ///     ..SdeSpec::default()
    /// };
    /// assert_eq!(
    ///     spec.to_source(),
    ///     "/// Brownian motion.\npub struct Bm {\n    params { s: f64 = 2.0 }\n    \
    ///      time = [1e-3, 1.0];\n    mean = 1.0;\n    std = s * t.sqrt();\n}\n"
    /// );
    /// ```
    pub fn to_source(&self) -> String {
        let mut s = String::new();
        if let Some(doc) = &self.doc {
            for line in doc.lines() {
                s.push_str(&format!("/// {line}\n"));
            }
        }
        s.push_str(&format!("pub struct {} {{\n", self.name));
        if !self.params.is_empty() {
            let params: Vec<String> = self
                .params
                .iter()
                .map(|p| match &p.default {
                    Some(d) => format!("{}: f64 = {d}", p.name),
                    None => format!("{}: f64", p.name),
                })
                .collect();
            s.push_str(&format!("    params {{ {} }}\n", params.join(", ")));
        }
        if let Some((lo, hi)) = &self.time {
            s.push_str(&format!("    time = [{lo}, {hi}];\n"));
        }
        for (name, e) in &self.lets {
            s.push_str(&format!("    let {name} = {e};\n"));
        }
        for (key, e) in [
            ("drift", &self.drift),
            ("diffusion", &self.diffusion),
            ("mean", &self.mean),
            ("std", &self.std),
        ] {
            if let Some(e) = e {
                s.push_str(&format!("    {key} = {e};\n"));
            }
        }
        s.push_str("}\n");
        s
    }
}

/// The part of a declaration a diagnostic points at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Part {
    /// The declaration as a whole (its name).
    Decl,
    /// The name of parameter `i`.
    ParamName(usize),
    /// The default value of parameter `i`.
    ParamDefault(usize),
    /// The first bound of `time`.
    TimeStart,
    /// The second bound of `time`.
    TimeEnd,
    /// The name of `let` binding `i`.
    LetName(usize),
    /// The expression of `let` binding `i`.
    Let(usize),
    /// The drift expression.
    Drift,
    /// The diffusion expression.
    Diffusion,
    /// The mean expression.
    Mean,
    /// The std expression.
    Std,
}

impl Part {
    /// What the part is called in messages.
    pub fn describe(self) -> &'static str {
        match self {
            Part::Decl => "the declaration",
            Part::ParamName(_) | Part::ParamDefault(_) => "a parameter",
            Part::TimeStart | Part::TimeEnd => "the time range",
            Part::LetName(_) | Part::Let(_) => "a `let` binding",
            Part::Drift => "the drift",
            Part::Diffusion => "the diffusion",
            Part::Mean => "the mean",
            Part::Std => "the std",
        }
    }
}

/// A problem with a declaration: where, and a one-line message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// The part of the declaration.
    pub part: Part,
    /// A byte range in that part's source text, when the problem is inside it.
    pub range: Option<SrcRange>,
    /// One line saying what is wrong.
    pub message: String,
}

impl Diagnostic {
    /// A diagnostic for a whole part.
    pub fn new(part: Part, message: impl Into<String>) -> Self {
        Diagnostic {
            part,
            range: None,
            message: message.into(),
        }
    }

    /// A diagnostic at a byte range of a part's source.
    pub fn at(part: Part, range: SrcRange, message: impl Into<String>) -> Self {
        Diagnostic {
            part,
            range: Some(range),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.message)
    }
}

impl std::error::Error for Diagnostic {}
